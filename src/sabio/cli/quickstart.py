"""`sabio quickstart`: the SageMaker deployment walkthrough, end to end, on a fresh server.

Trains a scikit-learn classifier, packages it as `model.tar.gz` with an `inference.py`, stores
it, deploys it through unmodified boto3 calls and invokes it.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

INFERENCE_PY = '''\
"""Inference handlers for the iris classifier (the SageMaker hosting contract)."""

import json
import os

import joblib
import numpy as np


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def input_fn(body, content_type):
    if content_type.split(";")[0].strip() != "application/json":
        raise ValueError(f"unsupported content type {content_type}")
    return np.asarray(json.loads(body), dtype=float)


def predict_fn(rows, bundle):
    model, names = bundle["model"], bundle["target_names"]
    return [str(names[i]) for i in model.predict(rows)]


def output_fn(prediction, accept):
    return json.dumps({"predictions": prediction}), "application/json"
'''

ROW = [[10.2, 5.1, 2.3, 1.4]]
BUCKET = "sabio-quickstart"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


class Progress:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def step(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:5.1f}s] {message}", flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server did not become healthy in time")


def build_model_archive(target: Path) -> float:
    """Train on the iris data that ships with scikit-learn; return the training accuracy."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris()
    model = LogisticRegression(max_iter=500).fit(iris.data, iris.target)
    buffer = io.BytesIO()
    joblib.dump({"model": model, "target_names": list(iris.target_names)}, buffer)
    with tarfile.open(target, "w:gz") as tar:
        for name, data in (
            ("model.joblib", buffer.getvalue()),
            ("code/inference.py", INFERENCE_PY.encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return float(model.score(iris.data, iris.target))


def run(home: Path | None = None, keep: bool = False) -> int:
    import boto3

    from sabio.artifacts.local import LocalArtifactStore
    from sabio.artifacts.uri import parse
    from sabio.config import Settings

    progress = Progress()
    home = (home or Path(tempfile.mkdtemp(prefix="sabio-quickstart-"))).resolve()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    progress.step(f"Starting a Sabio server on {url} (home {home})")
    home.mkdir(parents=True, exist_ok=True)
    log_file = (home / "server.log").open("ab")
    server = subprocess.Popen(
        [sys.executable, "-m", "sabio", "server", "--port", str(port), "--home", str(home)],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait_healthy(url, server)
        progress.step("Server is up")

        with tempfile.TemporaryDirectory() as work:
            archive = Path(work) / "model.tar.gz"
            accuracy = build_model_archive(archive)
            progress.step(f"Trained LogisticRegression on iris (training accuracy {accuracy:.3f})")
            model_uri = f"s3://{BUCKET}/iris/model.tar.gz"
            store = LocalArtifactStore(Settings(home=home).resolved_artifact_root)
            store.upload_file(archive, parse(model_uri))
            progress.step(f"Stored model.tar.gz (with code/inference.py) at {model_uri}")

        # Everything below is plain boto3: only AWS_ENDPOINT_URL points it at Sabio.
        os.environ["AWS_ENDPOINT_URL"] = url
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "sabio")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "sabio")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        sm = boto3.client("sagemaker")
        runtime = boto3.client("sagemaker-runtime")
        name = f"iris-{int(time.time())}"
        sm.create_model(
            ModelName=name,
            ExecutionRoleArn="arn:aws:iam::123456789012:role/SabioQuickstart",
            PrimaryContainer={
                "Image": SKLEARN_IMAGE,
                "ModelDataUrl": model_uri,
            },
        )
        sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": name,
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
        )
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        progress.step(f"Created model, endpoint config and endpoint {name}; waiting for InService")
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        status = sm.describe_endpoint(EndpointName=name)["EndpointStatus"]
        progress.step(f"Endpoint {name} is {status}")

        response = runtime.invoke_endpoint(
            EndpointName=name, ContentType="application/json", Body=json.dumps(ROW)
        )
        prediction: Any = json.loads(response["Body"].read())
        progress.step(
            f"Invoked with {json.dumps(ROW)} -> {json.dumps(prediction)} "
            f"(variant {response['InvokedProductionVariant']})"
        )
        print()
        print("Call it again from Python while the server runs (sabio quickstart --keep):")
        print(
            textwrap.indent(
                textwrap.dedent(
                    f"""\
                    import json, boto3
                    # export AWS_ENDPOINT_URL={url} (and any AWS_ACCESS_KEY_ID/SECRET)
                    runtime = boto3.client("sagemaker-runtime", region_name="us-east-1")
                    response = runtime.invoke_endpoint(
                        EndpointName="{name}",
                        ContentType="application/json",
                        Body=json.dumps({json.dumps(ROW)}),
                    )
                    print(json.loads(response["Body"].read()))"""
                ),
                "    ",
            )
        )
        print()
        if keep:
            progress.step(
                f"Leaving the server running (pid {server.pid}); stop it with kill {server.pid}"
            )
            return 0
    finally:
        if not keep:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        log_file.close()
    progress.step(
        "Server stopped cleanly"
        if server.returncode == 0
        else f"Server exited with {server.returncode}"
    )
    return 0 if server.returncode == 0 else 1
