"""Deploying through boto3 exactly as the SageMaker tutorials do."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sabio.artifacts.local import LocalArtifactStore
from sabio.artifacts.uri import parse
from support.models import model_archive
from support.server import SabioServer

SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def store_archive(server: SabioServer, archive: Path, key: str) -> str:
    """Put a file in the server's artifact store; returns its s3:// URI."""
    uri = f"s3://models/{key}"
    LocalArtifactStore(server.home / "artifacts").upload_file(archive, parse(uri))
    return uri


def store_code_model(server: SabioServer, directory: Path, code: str, name: str) -> str:
    """A model of only `code/inference.py` (no model file), stored under a fresh key named
    after `name`; returns its s3:// URI."""
    archive = model_archive(
        directory / f"{name}.tar.gz", {"code/inference.py": code}, with_model=False
    )
    return store_archive(server, archive, f"{unique(name)}/model.tar.gz")


def create_model(sm: Any, model_uri: str, prefix: str) -> str:
    """A scikit-learn model of the archive at `model_uri`, under a fresh name; returns it."""
    name = unique(prefix)
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataUrl": model_uri},
    )
    return name


def endpoint_config(
    sm: Any, model_name: str, count: int = 1, instance_type: str = "ml.t2.medium"
) -> str:
    """A one-variant (`AllTraffic`) endpoint configuration for `model_name`; its name."""
    name = unique("cfg")
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": model_name,
                "InstanceType": instance_type,
                "InitialInstanceCount": count,
            }
        ],
    )
    return name


def deploy(
    sm: Any,
    model_uri: str | None,
    *,
    name: str | None = None,
    environment: dict[str, str] | None = None,
    instance_count: int = 1,
    wait: bool = True,
    image: str = SKLEARN_IMAGE,
    variants: list[dict[str, Any]] | None = None,
    wait_attempts: int = 300,
    **config: Any,
) -> str:
    """Model, endpoint config (with any extra `config` members) and endpoint, as tutorials do.

    `variants` replaces the one `AllTraffic` variant of `instance_count` instances; its members
    name the model, so pass `name` with them."""
    name = name or unique("ep")
    container: dict[str, Any] = {"Image": image}
    if model_uri:
        container["ModelDataUrl"] = model_uri
    if environment:
        container["Environment"] = environment
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer=container)
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=variants
        or [
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": instance_count,
            }
        ],
        **config,
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    if wait:
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": wait_attempts}
        )
    return name


def wait_for_status(sm: Any, name: str, statuses: set[str], timeout: float = 60) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sm.describe_endpoint(EndpointName=name)
        if described["EndpointStatus"] in statuses or time.monotonic() > deadline:
            return described
        time.sleep(0.1)


def invoke_when_ready(runtime: Any, name: str, body: bytes, timeout: float = 30) -> bytes:
    """Invoke, retrying only while the endpoint's instances are still starting."""
    import time

    from botocore.exceptions import ClientError

    deadline = time.monotonic() + timeout
    while True:
        try:
            response = runtime.invoke_endpoint(
                EndpointName=name, ContentType="application/json", Body=body
            )
            return bytes(response["Body"].read())
        except ClientError as error:
            if error.response["Error"]["Code"] != "ModelNotReadyException":
                raise
            assert time.monotonic() < deadline, "the endpoint never became ready"
            time.sleep(0.1)
