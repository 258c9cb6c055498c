"""Training jobs as the SageMaker Python SDK sends them: source code packed as
`sourcedir.tar.gz`, hyperparameters JSON-encoded, data under an S3 prefix."""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_iris

from sabio.artifacts.local import LocalArtifactStore
from sabio.artifacts.uri import parse
from support.server import SabioServer

SKLEARN_TRAINING_IMAGE = (
    "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
)
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


def put_bytes(server: SabioServer, uri: str, data: bytes) -> str:
    LocalArtifactStore(server.home / "artifacts").write(parse(uri), io.BytesIO(data))
    return uri


def put_sourcedir(server: SabioServer, uri: str, files: dict[str, str]) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return put_bytes(server, uri, buffer.getvalue())


def put_iris_csv(server: SabioServer, prefix: str) -> str:
    """Iris as CSV with the label in the first column, no header."""
    iris = load_iris()
    rows = np.column_stack([iris.target, iris.data])
    text = "\n".join(",".join(f"{v:g}" for v in row) for row in rows) + "\n"
    put_bytes(server, f"{prefix}/iris.csv", text.encode())
    return prefix


def sdk_hyperparameters(entry_point: str, sourcedir: str, **user: Any) -> dict[str, str]:
    """What SDK v2 Framework estimators send: every value JSON-encoded."""
    values: dict[str, Any] = {
        "sagemaker_program": entry_point,
        "sagemaker_submit_directory": sourcedir,
        "sagemaker_container_log_level": 20,
        "sagemaker_region": "us-east-1",
        **user,
    }
    return {k: json.dumps(v) for k, v in values.items()}


def channel(name: str, uri: str, **extra: Any) -> dict[str, Any]:
    source: dict[str, Any] = {
        "S3DataType": "S3Prefix",
        "S3Uri": uri,
        "S3DataDistributionType": extra.pop("distribution", "FullyReplicated"),
    }
    return {"ChannelName": name, "DataSource": {"S3DataSource": source}, **extra}


def create_job(
    sm: Any,
    name: str,
    *,
    image: str = SKLEARN_TRAINING_IMAGE,
    hyperparameters: dict[str, str] | None = None,
    channels: list[dict[str, Any]] | None = None,
    output: str = "s3://training/output",
    instance_count: int = 1,
    instance_type: str = "ml.m5.large",
    max_runtime: int = 600,
    **extra: Any,
) -> None:
    algorithm = {"TrainingImage": image, "TrainingInputMode": "File", **extra.pop("algorithm", {})}
    if channels:
        extra["InputDataConfig"] = channels
    if hyperparameters:
        extra["HyperParameters"] = hyperparameters
    sm.create_training_job(
        TrainingJobName=name,
        RoleArn=ROLE,
        AlgorithmSpecification=algorithm,
        OutputDataConfig={"S3OutputPath": output},
        ResourceConfig={
            "InstanceType": instance_type,
            "InstanceCount": instance_count,
            "VolumeSizeInGB": 10,
        },
        StoppingCondition={"MaxRuntimeInSeconds": max_runtime},
        **extra,
    )


def wait_job(sm: Any, name: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sm.describe_training_job(TrainingJobName=name)
        if described["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            return described
        assert time.monotonic() < deadline, described
        time.sleep(0.1)


def wait_secondary(sm: Any, name: str, secondary: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while sm.describe_training_job(TrainingJobName=name)["SecondaryStatus"] != secondary:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def read_object(server: SabioServer, uri: str) -> bytes:
    with LocalArtifactStore(server.home / "artifacts").open_read(parse(uri)) as stream:
        return stream.read()


def members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def wait_log(logs: Any, job: str, text: str, timeout: float = 60) -> None:
    """Wait until a line containing `text` is in one of the job's log streams."""
    deadline = time.monotonic() + timeout
    group = "/aws/sagemaker/TrainingJobs"
    while True:
        try:
            streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{job}/")
        except logs.exceptions.ResourceNotFoundException:
            streams = {"logStreams": []}
        for stream in streams["logStreams"]:
            events = logs.get_log_events(
                logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=True
            )["events"]
            if any(text in event["message"] for event in events):
                return
        assert time.monotonic() < deadline, f"{text!r} never appeared in the logs of {job}"
        time.sleep(0.1)
