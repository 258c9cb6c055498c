"""The SageMaker Python SDK v2 flow, unmodified, as a user runs it against Sabio.

Run by tests/sdk/test_sagemaker_sdk.py in its own environment (the SDK is not a dependency of
Sabio): only AWS_ENDPOINT_URL and credentials point it at the server, and `default_bucket` is
given to the session (the SDK asks AWS's STS for a bucket name otherwise). Prints one JSON line
with what it saw.
"""

import json
import os
import sys

import numpy as np
import sagemaker
from sagemaker.sklearn.estimator import SKLearn
from sklearn.linear_model import LogisticRegression

work = sys.argv[1]
bucket = "sdk-v2"
session = sagemaker.Session(default_bucket=bucket)
session.boto_session.client("s3").create_bucket(Bucket=bucket)

rng = np.random.default_rng(0)
features = rng.normal(size=(200, 4))
labels = (features[:, 0] + features[:, 1] > 0).astype(int)
data = os.path.join(work, "train.csv")
np.savetxt(data, np.column_stack([labels, features]), delimiter=",")
train = session.upload_data(data, bucket=bucket, key_prefix="data/train")

estimator = SKLearn(
    entry_point="train.py",
    source_dir=os.path.join(work, "code"),
    framework_version="1.2-1",
    instance_type="ml.m5.large",
    instance_count=1,
    role="arn:aws:iam::123456789012:role/SageMakerRole",
    sagemaker_session=session,
    hyperparameters={"C": 0.5},
    metric_definitions=[{"Name": "train:accuracy", "Regex": "accuracy=([0-9.]+)"}],
)
estimator.fit({"train": train}, logs=True)
job = estimator.latest_training_job.describe()
predictor = estimator.deploy(initial_instance_count=1, instance_type="ml.m5.large")
prediction = predictor.predict(features[:5])
predictor.delete_endpoint()
print(
    "\nRESULT "
    + json.dumps(
        {
            "status": job["TrainingJobStatus"],
            "metrics": {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])},
            "prediction": np.asarray(prediction).tolist(),
            "expected": LogisticRegression(C=0.5)
            .fit(features, labels)
            .predict(features[:5])
            .tolist(),
        }
    )
)
