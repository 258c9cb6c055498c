"""The SageMaker Python SDK v3 `ModelTrainer` flow, unmodified, against Sabio.

Run by tests/sdk/test_sagemaker_sdk.py in its own environment. SDK v3 builds its own boto3
clients, so AWS_ENDPOINT_URL (and credentials) is the only way to point it at the server.
Prints one JSON line with what it saw.
"""

import json
import os
import sys

import boto3
import numpy as np
from sagemaker.core.helper.session_helper import Session
from sagemaker.train import ModelTrainer
from sagemaker.train.configs import Compute, InputData, SourceCode

work = sys.argv[1]
bucket = "sdk-v3"
boto3.client("s3").create_bucket(Bucket=bucket)
session = Session(default_bucket=bucket)

rng = np.random.default_rng(0)
features = rng.normal(size=(200, 4))
labels = (features[:, 0] + features[:, 1] > 0).astype(int)
data = os.path.join(work, "train.csv")
np.savetxt(data, np.column_stack([labels, features]), delimiter=",")
boto3.client("s3").upload_file(data, bucket, "v3/data/train.csv")

trainer = ModelTrainer(
    training_image="683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
    source_code=SourceCode(source_dir=os.path.join(work, "code"), entry_script="train.py"),
    compute=Compute(instance_type="ml.m5.large", instance_count=1),
    role="arn:aws:iam::123456789012:role/SageMakerRole",
    sagemaker_session=session,
    base_job_name="sdk-v3",
    hyperparameters={"C": 0.5},
)
trainer.train(
    input_data_config=[InputData(channel_name="train", data_source=f"s3://{bucket}/v3/data/")],
    wait=True,
    logs=True,
)
job = trainer._latest_training_job
described = boto3.client("sagemaker").describe_training_job(TrainingJobName=job.training_job_name)
print(
    "RESULT "
    + json.dumps(
        {
            "status": described["TrainingJobStatus"],
            "reason": described.get("FailureReason"),
            "artifacts": described["ModelArtifacts"]["S3ModelArtifacts"],
        }
    )
)
