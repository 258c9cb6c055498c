"""The SageMaker Python SDK v3's serving API, unmodified, as a user runs it against Sabio.

Run by tests/sdk/test_sagemaker_sdk.py in its own environment. A scikit-learn model is trained
here and packed into a `model.tar.gz` with `code/inference.py` (no training job), then served
two ways:
- with the `sagemaker.core.resources` classes: `Model.create`, `EndpointConfig.create`,
  `Endpoint.create`, `wait_for_status`, `invoke` (JSON and CSV), `get` (describe), `get_all`,
  `update`, `delete` and `wait_for_delete`;
- with `sagemaker.serve.ModelBuilder` in SageMaker endpoint mode: an image URI, the S3 model
  data and a `SourceCode` entry script; `build()` repacks the code into a new model archive and
  creates the model, `deploy()` creates an instance-backed, a serverless and an asynchronous
  endpoint (invoked with `invoke_async`), the first with data capture; `transformer()` runs a
  batch transform of the built model.
Only AWS_ENDPOINT_URL and credentials point the SDK at the server; `default_bucket` is given to
the session (the SDK asks AWS's STS otherwise). Deploys are started with `wait=False` and
awaited with `Endpoint.wait_for_status(poll=1)`, because `ModelBuilder.deploy` polls every 30 s.
Prints one JSON line with what it saw.
"""

import io
import json
import os
import sys
import tarfile
import time

import boto3
import joblib
import numpy as np
from sagemaker.core.helper.session_helper import Session
from sagemaker.core.inference_config import AsyncInferenceConfig, ServerlessInferenceConfig
from sagemaker.core.model_monitor import DataCaptureConfig
from sagemaker.core.resources import Endpoint, EndpointConfig, Model
from sagemaker.core.shapes import ContainerDefinition, ProductionVariant
from sagemaker.core.training.configs import SourceCode
from sagemaker.serve import ModelBuilder
from sklearn.linear_model import LogisticRegression

INFERENCE_PY = """\
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"

work = sys.argv[1]
bucket = "sdk-v3-serving"
s3 = boto3.client("s3")
s3.create_bucket(Bucket=bucket)
session = Session(default_bucket=bucket)

rng = np.random.default_rng(3)
features = rng.normal(size=(200, 4))
labels = (features[:, 1] - features[:, 3] > 0).astype(int)
classifier = LogisticRegression().fit(features, labels)
joblib.dump(classifier, os.path.join(work, "model.joblib"))
archive = os.path.join(work, "model.tar.gz")
with tarfile.open(archive, "w:gz") as tar:
    tar.add(os.path.join(work, "model.joblib"), arcname="model.joblib")
    info = tarfile.TarInfo("code/inference.py")
    info.size = len(INFERENCE_PY)
    tar.addfile(info, io.BytesIO(INFERENCE_PY.encode()))
s3.upload_file(archive, bucket, "models/model.tar.gz")
model_data = f"s3://{bucket}/models/model.tar.gz"
serving = os.path.join(work, "serving")
os.makedirs(serving)
with open(os.path.join(serving, "inference.py"), "w") as handle:
    handle.write(INFERENCE_PY)

rows = features[:5]
csv_body = "\n".join(",".join(repr(float(v)) for v in row) for row in rows)
seen: dict = {"expected": classifier.predict(rows).tolist()}

# The resource classes: one call per SageMaker operation.
model = Model.create(
    model_name="v3-sklearn",
    primary_container=ContainerDefinition(
        image=IMAGE,
        model_data_url=model_data,
        environment={
            "SAGEMAKER_PROGRAM": "inference.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
        },
    ),
    execution_role_arn=ROLE,
)
config = EndpointConfig.create(
    endpoint_config_name="v3-real-time",
    production_variants=[
        ProductionVariant(
            variant_name="AllTraffic",
            model_name=model.model_name,
            initial_instance_count=1,
            instance_type="ml.m5.large",
        )
    ],
)
endpoint = Endpoint.create(endpoint_name="v3-real-time", endpoint_config_name=config)

# ModelBuilder: an image, the model data and an entry script (SageMaker endpoint mode).
capture = DataCaptureConfig(
    enable_capture=True, sampling_percentage=100, destination_s3_uri=f"s3://{bucket}/capture"
)
builders, endpoints = {}, {}
for name, inference_config, options in (
    ("v3-builder", None, {"data_capture_config": capture}),
    ("v3-serverless", ServerlessInferenceConfig(memory_size_in_mb=1024, max_concurrency=2), {}),
    ("v3-async", AsyncInferenceConfig(output_path=f"s3://{bucket}/async-output"), {}),
):
    builder = ModelBuilder(
        model_path=os.path.join(work, name),
        image_uri=IMAGE,
        s3_model_data_url=model_data,
        source_code=SourceCode(source_dir=serving, entry_script="inference.py"),
        role_arn=ROLE,
        sagemaker_session=session,
        instance_type="ml.m5.large",
    )
    builder.build(model_name=name)
    builders[name] = builder
    endpoints[name] = builder.deploy(
        endpoint_name=name, inference_config=inference_config, wait=False, **options
    )
    seen[f"{name}_model_data"] = Model.get(model_name=name).primary_container.model_data_url

endpoint.wait_for_status("InService", poll=1, timeout=120)
answer = endpoint.invoke(
    body=json.dumps(rows.tolist()), content_type="application/json", accept="application/json"
)
seen["json"] = json.loads(answer.body.read())
seen["json_content_type"] = answer.content_type
seen["invoked_variant"] = answer.invoked_production_variant
answer = endpoint.invoke(body=csv_body, content_type="text/csv", accept="text/csv")
seen["csv"] = [int(float(line)) for line in answer.body.read().decode().split()]
seen["csv_content_type"] = answer.content_type

for name, deployed in endpoints.items():
    deployed.wait_for_status("InService", poll=1, timeout=120)
    if name == "v3-async":
        continue
    answer = deployed.invoke(body=csv_body, content_type="text/csv", accept="application/json")
    seen[name] = json.loads(answer.body.read())

# Asynchronous: the input is read from S3 and the answer written to the output path.
s3.put_object(Bucket=bucket, Key="async-input/rows.csv", Body=csv_body.encode())
queued = endpoints["v3-async"].invoke_async(
    input_location=f"s3://{bucket}/async-input/rows.csv",
    content_type="text/csv",
    accept="application/json",
)
seen["async_output"] = queued.output_location
output_key = queued.output_location.split(f"s3://{bucket}/", 1)[1]
deadline = time.monotonic() + 30
while "v3-async" not in seen and time.monotonic() < deadline:
    try:
        seen["v3-async"] = json.loads(s3.get_object(Bucket=bucket, Key=output_key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        time.sleep(0.2)

# Data capture on the ModelBuilder endpoint: JSON lines under <destination>/<endpoint>/<variant>.
deadline = time.monotonic() + 30
while "capture_files" not in seen and time.monotonic() < deadline:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="capture/v3-builder/").get("Contents")
    if listed:
        seen["capture_files"] = [item["Key"] for item in listed]
    else:
        time.sleep(0.2)
seen["capture_status"] = Endpoint.get(endpoint_name="v3-builder").data_capture_config.capture_status

# Batch transform of the model ModelBuilder built.
s3.put_object(Bucket=bucket, Key="batch-input/rows.csv", Body=csv_body.encode())
transformer = builders["v3-builder"].transformer(
    instance_count=1,
    instance_type="ml.m5.large",
    output_path=f"s3://{bucket}/batch-output",
    strategy="MultiRecord",
    assemble_with="Line",
    accept="text/csv",
)
transformer.transform(
    f"s3://{bucket}/batch-input/rows.csv",
    content_type="text/csv",
    split_type="Line",
    wait=True,
    logs=False,
)
output = s3.get_object(Bucket=bucket, Key="batch-output/rows.csv.out")["Body"].read()
seen["batch"] = [int(float(line)) for line in output.decode().split()]

# Update in place, keeping the variant's properties, and list what is deployed.
endpoint.update(retain_all_variant_properties=True)
seen["updating"] = endpoint.endpoint_status
endpoint.wait_for_status("InService", poll=1, timeout=60)
seen["listed"] = sorted(e.endpoint_name for e in Endpoint.get_all(name_contains="v3-"))

described = Endpoint.get(endpoint_name="v3-real-time")
seen["status"] = described.endpoint_status
seen["variant"] = described.production_variants[0].variant_name
seen["instances"] = described.production_variants[0].current_instance_count
seen["config_instance_type"] = (
    EndpointConfig.get(endpoint_config_name="v3-real-time").production_variants[0].instance_type
)
serverless = Endpoint.get(endpoint_name="v3-serverless")
seen["serverless_config"] = (
    EndpointConfig.get(endpoint_config_name=serverless.endpoint_config_name)
    .production_variants[0]
    .serverless_config.model_dump()
)
seen["model_image"] = Model.get(model_name="v3-sklearn").primary_container.image

for deployed in (endpoint, *endpoints.values()):
    config_name = deployed.endpoint_config_name
    deployed.delete()
    deployed.wait_for_delete(poll=1, timeout=60)
    EndpointConfig.get(endpoint_config_name=config_name).delete()
for name in ("v3-sklearn", *endpoints):
    Model.get(model_name=name).delete()
sm = boto3.client("sagemaker")
left = {"NameContains": "v3-", "MaxResults": 100}
seen["left"] = {
    "endpoints": [e["EndpointName"] for e in sm.list_endpoints(**left)["Endpoints"]],
    "configs": [
        c["EndpointConfigName"] for c in sm.list_endpoint_configs(**left)["EndpointConfigs"]
    ],
    "models": [m["ModelName"] for m in sm.list_models(**left)["Models"]],
}

print("\nRESULT " + json.dumps(seen, default=str))
