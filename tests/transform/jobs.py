"""What the batch transform tests share: a model with handlers for every input format, the iris
data, and short ways to create a transform job and wait for it."""

from __future__ import annotations

import time
from typing import Any

import boto3
import numpy as np
from sklearn.datasets import load_iris

from sabio.artifacts.local import LocalArtifactStore
from sabio.artifacts.uri import parse
from support.deploy import unique
from support.models import iris_model
from support.server import SabioServer

INFERENCE = """\
import json, os, time
import joblib
import numpy as np

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def _features(value):
    return value["features"] if isinstance(value, dict) else value

def _framed(body, header, size_of):
    rows, position = [], 0
    while position < len(body):
        length = size_of(body[position : position + header])
        data = body[position + header : position + header + length]
        rows.append([float(v) for v in data.decode().split(",")])
        position += header + length + (-length % 4 if header == 8 else 4)
    return rows

def input_fn(body, content_type):
    if content_type == "application/x-recordio":
        rows = _framed(body, 8, lambda h: int.from_bytes(h[4:8], "little") & (2**29 - 1))
        return np.asarray(rows, dtype=float).reshape(-1, 4)
    if content_type == "application/x-tfrecord":
        rows = _framed(body, 12, lambda h: int.from_bytes(h[:8], "little"))
        return np.asarray(rows, dtype=float).reshape(-1, 4)
    if content_type == "application/x-record":
        body = body.decode()
        content_type = "text/csv"
    if isinstance(body, bytes):
        body = body.decode()
    if content_type == "text/csv":
        rows = [[float(v) for v in line.split(",")] for line in body.splitlines() if line.strip()]
    elif content_type == "application/jsonlines":
        rows = [_features(json.loads(line)) for line in body.splitlines() if line.strip()]
    else:
        rows = _features(json.loads(body))
    return np.asarray(rows, dtype=float).reshape(-1, 4)

def predict_fn(data, model):
    time.sleep(float(os.environ.get("PREDICT_SLEEP", "0")))
    if (data == -999).any():
        raise ValueError("marker value -999 in the input")
    if (data == -998).any():
        os._exit(3)
    return model.predict(data)

def output_fn(prediction, accept):
    values = [int(p) for p in prediction]
    if accept == "text/csv":
        return "".join(f"{v}\\n" for v in values), accept
    if accept == "application/jsonlines":
        return "".join(json.dumps(v) + "\\n" for v in values), accept
    if accept == "application/x-environment":
        keys = sorted(k for k in os.environ if k.startswith(("SAGEMAKER_", "PREDICT_")))
        return json.dumps({k: os.environ[k] for k in keys}), accept
    return json.dumps({"predictions": values}), "application/json"
"""

IRIS = load_iris()
MODEL = iris_model()


def csv_text(rows: np.ndarray) -> str:
    return "".join(",".join(f"{v:g}" for v in row) + "\n" for row in rows)


def predictions(rows: np.ndarray) -> list[int]:
    return [int(p) for p in MODEL.predict(rows)]


FILES = {
    "part-1.csv": slice(0, 50),
    "sub/part-2.csv": slice(50, 100),
    "part-3.csv": slice(100, 150),
}


def create(sm: Any, model: str, source: str, output: str, **options: Any) -> str:
    name = unique("tj")
    transform_input: dict[str, Any] = {
        "DataSource": {
            "S3DataSource": {"S3DataType": options.pop("data_type", "S3Prefix"), "S3Uri": source}
        },
        "ContentType": options.pop("content_type", "text/csv"),
    }
    if "split" in options:
        transform_input["SplitType"] = options.pop("split")
    if "compression" in options:
        transform_input["CompressionType"] = options.pop("compression")
    transform_output: dict[str, Any] = {"S3OutputPath": output}
    if "accept" in options:
        transform_output["Accept"] = options.pop("accept")
    if "assemble" in options:
        transform_output["AssembleWith"] = options.pop("assemble")
    sm.create_transform_job(
        TransformJobName=name,
        ModelName=model,
        TransformInput=transform_input,
        TransformOutput=transform_output,
        TransformResources={
            "InstanceType": "ml.m5.large",
            "InstanceCount": options.pop("instances", 1),
        },
        **options,
    )
    return name


def wait(sm: Any, name: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sm.describe_transform_job(TransformJobName=name)
        if described["TransformJobStatus"] in ("Completed", "Failed", "Stopped"):
            return described
        assert time.monotonic() < deadline, described
        time.sleep(0.1)


def wait_for_data_log(server: SabioServer, name: str, text: str, timeout: float = 30) -> None:
    """Wait until the job's data log has a line containing `text` (records are flowing)."""
    deadline = time.monotonic() + timeout
    logs = boto3.client("logs", endpoint_url=server.url)
    while True:
        try:
            found = logs.filter_log_events(
                logGroupName="/aws/sagemaker/TransformJobs", logStreamNamePrefix=f"{name}/"
            )
        except logs.exceptions.ResourceNotFoundException:
            found = {"events": []}
        if any(text in event["message"] for event in found["events"]):
            return
        assert time.monotonic() < deadline, f"{text!r} never appeared in the data log of {name}"
        time.sleep(0.1)


def exists(server: SabioServer, uri: str) -> bool:
    return LocalArtifactStore(server.home / "artifacts").stat(parse(uri)) is not None
