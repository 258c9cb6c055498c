"""The SageMaker Python SDK v2's serving features, unmodified, as a user runs them against Sabio.

Run by tests/sdk/test_sagemaker_sdk.py in its own environment. A scikit-learn model is trained
here and packed into a `model.tar.gz` (no training job), then deployed through `SKLearnModel`
four ways: with data capture (predicting through the SDK's CSV and JSON serializers, then
reading the capture files back through the SDK's S3 helpers), updated to two instances,
serverless, and asynchronous. Only AWS_ENDPOINT_URL and credentials point the SDK at the
server; `default_bucket` is given to the session (the SDK asks AWS's STS otherwise). Deploys
are started with `wait=False` and awaited with `Session.wait_for_endpoint(poll=1)`, because the
SDK's own wait polls every 30 s. Prints one JSON line with what it saw.
"""

import json
import os
import sys
import tarfile
import time

import joblib
import numpy as np
import sagemaker
from sagemaker.async_inference import AsyncInferenceConfig, WaiterConfig
from sagemaker.deserializers import CSVDeserializer, JSONDeserializer
from sagemaker.model_monitor import DataCaptureConfig
from sagemaker.s3 import S3Downloader
from sagemaker.serializers import CSVSerializer, JSONSerializer
from sagemaker.serverless import ServerlessInferenceConfig
from sagemaker.sklearn.model import SKLearnModel
from sklearn.linear_model import LogisticRegression

INFERENCE_PY = """\
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""

work = sys.argv[1]
bucket = "sdk-v2-serving"
role = "arn:aws:iam::123456789012:role/SageMakerRole"
session = sagemaker.Session(default_bucket=bucket)
session.boto_session.client("s3").create_bucket(Bucket=bucket)

rng = np.random.default_rng(1)
features = rng.normal(size=(200, 4))
labels = (features[:, 0] - features[:, 2] > 0).astype(int)
classifier = LogisticRegression().fit(features, labels)
joblib.dump(classifier, os.path.join(work, "model.joblib"))
archive = os.path.join(work, "model.tar.gz")
with tarfile.open(archive, "w:gz") as tar:
    tar.add(os.path.join(work, "model.joblib"), arcname="model.joblib")
model_data = session.upload_data(archive, bucket=bucket, key_prefix="models/classifier")
code = os.path.join(work, "serving")
os.makedirs(code)
with open(os.path.join(code, "inference.py"), "w") as handle:
    handle.write(INFERENCE_PY)


def sklearn_model():
    return SKLearnModel(
        model_data=model_data,
        role=role,
        entry_point="inference.py",
        source_dir=code,
        framework_version="1.2-1",
        sagemaker_session=session,
    )


capture_uri = f"s3://{bucket}/capture"
captured = sklearn_model().deploy(
    initial_instance_count=1,
    instance_type="ml.m5.large",
    endpoint_name="sdk-capture",
    data_capture_config=DataCaptureConfig(
        enable_capture=True, sampling_percentage=100, destination_s3_uri=capture_uri
    ),
    wait=False,
)
serverless = sklearn_model().deploy(
    endpoint_name="sdk-serverless",
    serverless_inference_config=ServerlessInferenceConfig(
        memory_size_in_mb=1024, max_concurrency=2
    ),
    wait=False,
)
asynchronous = sklearn_model().deploy(
    initial_instance_count=1,
    instance_type="ml.m5.large",
    endpoint_name="sdk-async",
    async_inference_config=AsyncInferenceConfig(output_path=f"s3://{bucket}/async-output"),
    wait=False,
)
for name in ("sdk-capture", "sdk-serverless", "sdk-async"):
    session.wait_for_endpoint(name, poll=1)

rows = features[:5]
seen = {"rows": rows.tolist(), "expected": classifier.predict(rows).tolist()}

# Asynchronous: the input goes to S3; the result is read from the output path below.
response = asynchronous.predict_async(data=rows)

# Data capture, through the SDK's CSV and JSON serializers.
captured.serializer, captured.deserializer = CSVSerializer(), CSVDeserializer()
seen["csv"] = captured.predict(rows)
captured.serializer, captured.deserializer = JSONSerializer(), JSONDeserializer()
seen["json"] = captured.predict(rows.tolist())

records = []
deadline = time.monotonic() + 30
while len(records) < 2 and time.monotonic() < deadline:
    time.sleep(0.5)
    files = S3Downloader.list(f"{capture_uri}/sdk-capture", sagemaker_session=session)
    records = [
        json.loads(line)
        for uri in files
        for line in S3Downloader.read_file(uri, sagemaker_session=session).splitlines()
    ]
seen["capture_files"] = files
seen["capture"] = records

# Two instances, then predict again.
captured.update_endpoint(initial_instance_count=2, instance_type="ml.m5.large", wait=False)
session.wait_for_endpoint("sdk-capture", poll=1)
described = session.sagemaker_client.describe_endpoint(EndpointName="sdk-capture")
seen["instances"] = described["ProductionVariants"][0]["CurrentInstanceCount"]
seen["updated"] = captured.predict(rows.tolist())

seen["serverless"] = np.asarray(serverless.predict(rows)).tolist()

# The SDK waits on the output and the failure object at once, and its waiter for the failure
# object keeps polling until max_attempts once the output is there: a short waiter keeps the
# process from lingering.
seen["async"] = np.asarray(response.get_result(WaiterConfig(max_attempts=15, delay=1))).tolist()
seen["async_output"] = response.output_path

for predictor in (captured, serverless, asynchronous):
    predictor.delete_model()
    predictor.delete_endpoint()
print("\nRESULT " + json.dumps(seen))
