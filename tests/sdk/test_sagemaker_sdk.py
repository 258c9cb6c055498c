"""The SageMaker Python SDK, unmodified, against a live Sabio server: SDK v2's SKLearn
estimator (fit with logs, deploy, predict, delete), SDK v3's ModelTrainer, and SDK v3's serving
API (the `sagemaker.core.resources` classes and `ModelBuilder`).

Each SDK version runs in its own environment, built with uv from the package registry (they
cannot share one: both are the `sagemaker` package); only AWS_ENDPOINT_URL and credentials
point them at Sabio.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sabio.compute.sandbox import bubblewrap_available
from support.server import SabioServer

HERE = Path(__file__).parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("sabio.api.s3") is None,
        reason="the SDKs upload code and data through the S3 gateway",
    ),
    pytest.mark.skipif(
        not bubblewrap_available(), reason="the SDK's container drivers use /opt/ml paths"
    ),
]


def sdk_environment(root: Path, *requirements: str) -> Path:
    from uv import find_uv_bin

    uv = find_uv_bin()
    python = root / "bin" / "python"
    if not python.exists():
        subprocess.run([uv, "venv", "-q", str(root), "--python", sys.executable], check=True)
        subprocess.run(
            [uv, "pip", "install", "-q", "--python", str(python), *requirements],
            check=True,
            timeout=600,
        )
    return python


def run_flow(python: Path, script: str, server: SabioServer, work: Path) -> dict[str, Any]:
    (work / "code").mkdir(parents=True)
    shutil.copy(HERE / "code_train.py", work / "code" / "train.py")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ENDPOINT_URL": server.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
        # SDK v3 checks the role's permissions with IAM's policy simulator, which Sabio does
        # not serve; this is the SDK's own switch for that check.
        "SAGEMAKER_VALIDATE_ROLE": "false",
        "PYTHONWARNINGS": "ignore",
    }
    result = subprocess.run(
        [str(python), str(HERE / script), str(work)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stdout[-4000:] + result.stderr[-4000:]
    payload: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    payload["stdout"] = result.stdout
    return payload


def test_sdk_v2_sklearn_estimator_fit_deploy_predict(
    server: SabioServer, tmp_path_factory: pytest.TempPathFactory
):
    python = sdk_environment(
        tmp_path_factory.getbasetemp() / "sdk-v2", "sagemaker>=2.250,<3", "scikit-learn"
    )
    seen = run_flow(python, "sdk_v2_flow.py", server, tmp_path_factory.mktemp("v2"))
    assert seen["status"] == "Completed"
    assert seen["metrics"]["train:accuracy"] > 0.9
    assert seen["prediction"] == pytest.approx(seen["expected"])
    assert "accuracy=" in seen["stdout"]


def test_sdk_v2_serving_capture_update_serverless_async(
    server: SabioServer, tmp_path_factory: pytest.TempPathFactory
):
    python = sdk_environment(
        tmp_path_factory.getbasetemp() / "sdk-v2", "sagemaker>=2.250,<3", "scikit-learn"
    )
    seen = run_flow(python, "sdk_v2_serving_flow.py", server, tmp_path_factory.mktemp("v2s"))
    expected, rows = seen["expected"], seen["rows"]
    assert [int(row[0]) for row in seen["csv"]] == expected
    for answer in ("json", "updated", "serverless", "async"):
        assert seen[answer] == expected, answer
    assert seen["instances"] == 2
    assert re.fullmatch(
        r"s3://sdk-v2-serving/async-output/[0-9a-f-]{36}\.out", seen["async_output"]
    )

    assert seen["capture_files"] and all(
        re.fullmatch(
            r"s3://sdk-v2-serving/capture/sdk-capture/AllTraffic/\d{4}/\d\d/\d\d/\d\d/.+\.jsonl",
            uri,
        )
        for uri in seen["capture_files"]
    )
    by_encoding = {r["captureData"]["endpointInput"]["encoding"]: r for r in seen["capture"]}
    assert sorted(by_encoding) == ["CSV", "JSON"]
    csv, as_json = by_encoding["CSV"]["captureData"], by_encoding["JSON"]["captureData"]
    assert csv["endpointInput"]["observedContentType"] == "text/csv"
    sent = [[float(v) for v in line.split(",")] for line in csv["endpointInput"]["data"].split()]
    assert sent == rows
    assert [int(v) for v in csv["endpointOutput"]["data"].split()] == expected
    assert json.loads(as_json["endpointInput"]["data"]) == rows
    assert json.loads(as_json["endpointOutput"]["data"]) == expected
    for record in seen["capture"]:
        assert record["eventVersion"] == "0"
        assert record["eventMetadata"]["eventId"] and record["eventMetadata"]["inferenceTime"]


def test_sdk_v3_model_trainer(server: SabioServer, tmp_path_factory: pytest.TempPathFactory):
    python = sdk_environment(tmp_path_factory.getbasetemp() / "sdk-v3", "sagemaker>=3.20")
    seen = run_flow(python, "sdk_v3_flow.py", server, tmp_path_factory.mktemp("v3"))
    assert seen["status"] == "Completed", seen["reason"]
    assert seen["artifacts"].endswith("/output/model.tar.gz")


def test_sdk_v3_serving_resources_and_model_builder(
    server: SabioServer, tmp_path_factory: pytest.TempPathFactory
):
    python = sdk_environment(tmp_path_factory.getbasetemp() / "sdk-v3", "sagemaker>=3.20")
    seen = run_flow(python, "sdk_v3_serving_flow.py", server, tmp_path_factory.mktemp("v3s"))
    expected = seen["expected"]
    for answer in ("json", "csv", "v3-builder", "v3-serverless", "v3-async", "batch"):
        assert seen[answer] == expected, answer
    assert re.fullmatch(
        r"s3://sdk-v3-serving/async-output/[0-9a-f-]{36}\.out", seen["async_output"]
    )
    assert seen["capture_status"] == "Started"
    assert seen["capture_files"] and all(
        re.fullmatch(r"capture/v3-builder/AllTraffic/\d{4}/\d\d/\d\d/\d\d/.+\.jsonl", key)
        for key in seen["capture_files"]
    )
    assert seen["updating"] == "Updating"
    assert seen["listed"] == ["v3-async", "v3-builder", "v3-real-time", "v3-serverless"]
    assert seen["json_content_type"] == "application/json"
    assert seen["csv_content_type"] == "text/csv"
    assert seen["invoked_variant"] == seen["variant"] == "AllTraffic"
    assert (seen["status"], seen["instances"], seen["config_instance_type"]) == (
        "InService",
        1,
        "ml.m5.large",
    )
    assert seen["serverless_config"]["memory_size_in_mb"] == 1024
    assert seen["serverless_config"]["max_concurrency"] == 2
    assert seen["model_image"].endswith("/sagemaker-scikit-learn:1.2-1-cpu-py3")
    for name in ("v3-builder", "v3-serverless", "v3-async"):
        assert seen[f"{name}_model_data"] == f"s3://sdk-v3-serving/{name}/model.tar.gz"
    assert all(
        not set(names) & {"v3-sklearn", "v3-real-time", "v3-builder", "v3-serverless", "v3-async"}
        for names in seen["left"].values()
    ), seen["left"]
