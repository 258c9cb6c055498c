"""Serverless endpoint variants: workers start on demand (forked from a pre-warmed parent), stop
after an idle period, are capped by MaxConcurrency and limited to MemorySizeInMB."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries.standard import ThrottledRetryableChecker

from support.deploy import ROLE, SKLEARN_IMAGE, deploy, store_archive, store_code_model, unique
from support.models import INFERENCE_PY, model_archive
from support.server import SabioServer, running_server

IDLE_SECONDS = 1.5

HUNGRY = """\
import json, os, time

def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    request = json.loads(body)
    time.sleep(request.get("sleep", 0))
    if request.get("allocate_mb"):
        hoard = bytearray(request["allocate_mb"] * 1024 * 1024)
        return json.dumps({"allocated": len(hoard)}), "application/json"
    seen = {
        "pid": os.getpid(),
        "endpoint": os.environ.get("SAGEMAKER_ENDPOINT_NAME"),
        "credentials": [k for k in os.environ if k.startswith("AWS_")],
    }
    return json.dumps(seen), "application/json"
"""


@pytest.fixture(scope="module")
def serverless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SabioServer]:
    """A server whose serverless workers stop after a short idle period."""
    env = {
        "SABIO_SERVERLESS_IDLE_SECONDS": str(IDLE_SECONDS),
        "SABIO_WORKER_STOP_GRACE_SECONDS": "2",
    }
    with running_server(tmp_path_factory.mktemp("serverless"), env) as running:
        yield running


@pytest.fixture
def clients(serverless: SabioServer, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", serverless.url)
    return boto3.client("sagemaker"), boto3.client("sagemaker-runtime")


def deploy_serverless(sm: Any, model_uri: str, *, wait: bool = True, **serverless: int) -> str:
    name = unique("sls")
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": name,
        "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 2, **serverless},
    }
    return deploy(sm, model_uri, name=name, variants=[variant], wait=wait, wait_attempts=600)


def workers(server: SabioServer, name: str) -> int:
    """The variant's running workers, as `/metrics` shows them."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith("sabio_variant_instances{") and f'endpoint="{name}"' in line:
            return int(line.rsplit(" ", 1)[1])
    return 0


def wait_for_workers(server: SabioServer, name: str, count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while workers(server, name) != count:
        assert time.monotonic() < deadline, f"{name} never had {count} worker(s)"
        time.sleep(0.1)


def memory_limit(pid: int) -> int | None:
    """The memory limit a process runs under: its cgroup's (v1 or v2), else its address-space
    rlimit."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            limit = Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "memory.limit_in_bytes"
        elif controllers == "":
            limit = Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.max"
        else:
            continue
        if limit.is_file() and limit.read_text().strip().isdigit():
            return int(limit.read_text())
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max address space") and line.split()[3].isdigit():
            return int(line.split()[3])
    return None


def invoke(runtime: Any, name: str, body: Any) -> dict[str, Any]:
    response = runtime.invoke_endpoint(
        EndpointName=name, ContentType="application/json", Body=json.dumps(body)
    )
    result: dict[str, Any] = json.loads(response["Body"].read())
    return result


def test_scales_to_zero_and_back_with_fast_cold_starts(
    serverless: SabioServer, clients: tuple[Any, Any], tmp_path: Path
) -> None:
    sm, runtime = clients
    archive = model_archive(tmp_path / "iris.tar.gz", {"code/inference.py": INFERENCE_PY})
    name = deploy_serverless(sm, store_archive(serverless, archive, "serverless/iris.tar.gz"))
    assert workers(serverless, name) == 0  # nothing runs before the first request

    started = time.monotonic()
    assert invoke(runtime, name, [[5.1, 3.5, 1.4, 0.2]]) == {"predictions": [0]}
    first = time.monotonic() - started
    assert workers(serverless, name) == 1

    wait_for_workers(serverless, name, 0, timeout=IDLE_SECONDS + 8)
    described = sm.describe_endpoint(EndpointName=name)
    assert described["EndpointStatus"] == "InService"
    variant = described["ProductionVariants"][0]
    assert variant["CurrentServerlessConfig"] == {"MemorySizeInMB": 1024, "MaxConcurrency": 2}
    assert "CurrentInstanceCount" not in variant

    started = time.monotonic()
    assert invoke(runtime, name, [[6.7, 3.0, 5.2, 2.3]]) == {"predictions": [2]}
    second = time.monotonic() - started
    # Forked from the pre-warmed parent: well under the seconds a fresh interpreter needs to
    # import scikit-learn (the limit is generous for a busy machine).
    assert second < 1.5, (first, second)

    stats = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName="ModelSetupTime",
        Dimensions=[
            {"Name": "EndpointName", "Value": name},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ],
        StartTime=datetime.now(UTC) - timedelta(minutes=5),
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
        Period=3600,
        Statistics=["SampleCount", "Maximum", "Minimum"],
    )
    [point] = stats["Datapoints"]
    assert point["SampleCount"] == 2  # two cold starts
    assert point["Unit"] == "Microseconds"
    assert 0 < point["Minimum"] <= point["Maximum"] < 5e6
    sm.delete_endpoint(EndpointName=name)


def test_scales_with_concurrency_and_throttles_past_max_concurrency(
    serverless: SabioServer, clients: tuple[Any, Any], tmp_path: Path
) -> None:
    sm, _ = clients
    name = deploy_serverless(sm, store_code_model(serverless, tmp_path, HUNGRY, "slow"))
    runtime = boto3.client(
        "sagemaker-runtime", config=Config(retries={"mode": "standard", "total_max_attempts": 1})
    )
    answers: list[dict[str, Any]] = []
    slow = [
        threading.Thread(target=lambda: answers.append(invoke(runtime, name, {"sleep": 2})))
        for _ in range(2)
    ]
    for thread in slow:
        thread.start()
    time.sleep(1.0)  # both are in flight, each on a worker of its own
    assert workers(serverless, name) == 2
    with pytest.raises(ClientError) as raised:
        invoke(runtime, name, {})
    error = raised.value.response
    assert error["Error"]["Code"] == "ThrottlingException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "ThrottlingException" in ThrottledRetryableChecker._THROTTLED_ERROR_CODES
    for thread in slow:
        thread.join(30)
    assert len(answers) == 2
    assert answers[0]["pid"] != answers[1]["pid"]
    assert "pid" in invoke(runtime, name, {})  # a free slot again
    wait_for_workers(serverless, name, 0, timeout=IDLE_SECONDS + 8)  # and back down
    sm.delete_endpoint(EndpointName=name)


def test_provisioned_concurrency_keeps_workers_warm(
    serverless: SabioServer, clients: tuple[Any, Any], tmp_path: Path
) -> None:
    sm, runtime = clients
    uri = store_code_model(serverless, tmp_path, HUNGRY, "provisioned")
    name = deploy_serverless(sm, uri, ProvisionedConcurrency=1)
    assert workers(serverless, name) == 1  # warm before the first request
    seen = invoke(runtime, name, {})
    pid = seen["pid"]
    # Forked from the pre-warmed parent, with a worker's isolation: its own session and
    # process group, its own environment, and MemorySizeInMB as its memory limit.
    assert os.getsid(pid) == os.getpgid(pid) == pid
    assert seen["endpoint"] == name
    assert seen["credentials"] == []
    assert memory_limit(pid) in (1024**3, 4 * 1024**3)  # the cgroup, or the rlimit floor
    time.sleep(IDLE_SECONDS + 1.5)
    assert workers(serverless, name) == 1
    assert invoke(runtime, name, {})["pid"] == pid  # the same worker, never stopped
    sm.delete_endpoint(EndpointName=name)


def test_memory_size_is_enforced_and_the_endpoint_keeps_serving(
    serverless: SabioServer, clients: tuple[Any, Any], tmp_path: Path
) -> None:
    sm, runtime = clients
    name = deploy_serverless(sm, store_code_model(serverless, tmp_path, HUNGRY, "hungry"))
    assert "allocated" in invoke(runtime, name, {"allocate_mb": 200})
    with pytest.raises(ClientError) as raised:
        # Over the 1024 MB limit (and over the address-space floor where no cgroup is usable).
        invoke(runtime, name, {"allocate_mb": 5 * 1024})
    assert raised.value.response["Error"]["Code"] == "ModelError"
    assert "pid" in invoke(runtime, name, {})
    logs = (serverless.home / "logs" / "endpoints" / name).glob("*.log")
    text = "\n".join(path.read_text(errors="replace") for path in logs)
    deadline = time.monotonic() + 5
    while "memory" not in text.lower() and time.monotonic() < deadline:
        time.sleep(0.2)
        logs = (serverless.home / "logs" / "endpoints" / name).glob("*.log")
        text = "\n".join(path.read_text(errors="replace") for path in logs)
    assert "MemorySizeInMB" in text or "MemoryError" in text
    sm.delete_endpoint(EndpointName=name)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"MemorySizeInMB": 1500, "MaxConcurrency": 2}, "not a valid memory size"),
        ({"MemorySizeInMB": 8192, "MaxConcurrency": 2}, "less than or equal to 6144"),
        ({"MemorySizeInMB": 1024, "MaxConcurrency": 201}, "less than or equal to 200"),
        (
            {"MemorySizeInMB": 1024, "MaxConcurrency": 2, "ProvisionedConcurrency": 3},
            "must be less than or equal to MaxConcurrency",
        ),
    ],
)
def test_serverless_config_is_validated(
    clients: tuple[Any, Any], config: dict[str, int], message: str
) -> None:
    sm, _ = clients
    name = unique("sls")
    sm.create_model(
        ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": SKLEARN_IMAGE}
    )
    with pytest.raises(ClientError) as raised:
        sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {"VariantName": "AllTraffic", "ModelName": name, "ServerlessConfig": config}
            ],
        )
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert message in raised.value.response["Error"]["Message"]
