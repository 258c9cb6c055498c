"""What the asynchronous inference tests share: a model that echoes, sleeps or fails on
request, deploying async endpoints through boto3, and waiting for answer objects."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from support.deploy import deploy, store_code_model, unique
from support.server import SabioServer

ECHO = """\
import json, os, time

def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    request = json.loads(body)
    if request.get("fail"):
        raise ValueError("asked to fail: " + str(request["fail"]))
    time.sleep(request.get("sleep", 0))
    return json.dumps({"echo": request, "content_type": content_type}), "application/json"
"""

FAST = {
    "SABIO_ASYNC_LEASE_SECONDS": "2",
    "SABIO_ASYNC_POLL_INTERVAL_SECONDS": "0.1",
}


def echo_model(server: SabioServer, tmp_path: Path) -> str:
    return store_code_model(server, tmp_path, ECHO, "echo")


def deploy_async(
    sm: Any, s3: Any, model_uri: str, *, bucket: str | None = None, **async_config: Any
) -> tuple[str, str]:
    """An async endpoint writing to a fresh bucket; returns (endpoint name, bucket)."""
    bucket = bucket or unique("async")
    s3.create_bucket(Bucket=bucket)
    config: dict[str, Any] = {
        "OutputConfig": {
            "S3OutputPath": f"s3://{bucket}/results",
            "S3FailurePath": f"s3://{bucket}/failures",
        },
        **async_config,
    }
    name = deploy(sm, model_uri, AsyncInferenceConfig=config)
    return name, bucket


def split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def wait_for_object(s3: Any, uri: str, timeout: float = 20) -> bytes:
    bucket, key = split(uri)
    s3.get_waiter("object_exists").wait(
        Bucket=bucket, Key=key, WaiterConfig={"Delay": 0.1, "MaxAttempts": int(timeout * 10)}
    )
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def put_input(s3: Any, bucket: str, key: str, payload: dict[str, Any]) -> str:
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(payload).encode())
    return f"s3://{bucket}/{key}"


def completed_event(
    endpoint: str, input_location: str, output_location: str, answer: str, inference_id: str
) -> dict[str, Any]:
    """The InferenceResult document SageMaker publishes for an answered JSON request read from
    S3, without its two timestamps."""
    return {
        "awsRegion": "us-east-1",
        "invocationStatus": "Completed",
        "requestParameters": {
            "endpointName": endpoint,
            "contentType": "application/json",
            "inputLocation": input_location,
        },
        "responseParameters": {
            "contentType": "application/json",
            "outputLocation": output_location,
            "responseBody": {"content": answer, "encoding": "UTF-8"},
        },
        "inferenceId": inference_id,
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }


def exists(s3: Any, uri: str) -> bool:
    bucket, key = split(uri)
    return bool(s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount"))


def eventually(check: Any, timeout: float = 20, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
