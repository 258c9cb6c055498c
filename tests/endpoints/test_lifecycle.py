"""Endpoint lifecycle through the controller: failures a user can act on, worker restarts,
oversized payloads, model errors, and a server restart that keeps endpoints serving."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, WaiterError

from support.deploy import (
    ROLE,
    SKLEARN_IMAGE,
    deploy,
    invoke_when_ready,
    store_archive,
    unique,
    wait_for_status,
)
from support.models import INFERENCE_PY, model_archive
from support.server import SabioServer


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SabioServer]:
    """A server that gives workers 4 seconds to become healthy."""
    running = SabioServer(
        tmp_path_factory.mktemp("impatient"),
        env={"SABIO_WORKER_STARTUP_TIMEOUT_SECONDS": "4"},
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


def clients(server: SabioServer, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    return boto3.client("sagemaker"), boto3.client("sagemaker-runtime")


def failed_reason(sm: Any, name: str) -> str:
    described = wait_for_status(sm, name, {"Failed", "InService"})
    assert described["EndpointStatus"] == "Failed"
    return str(described["FailureReason"])


def test_failure_reasons(impatient: SabioServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    sm, _ = clients(impatient, monkeypatch)

    missing = deploy(sm, "s3://models/does/not/exist.tar.gz", wait=False)
    assert "no such object" in failed_reason(sm, missing)

    raising = "def model_fn(model_dir):\n    raise ValueError('weights are corrupt')\n"
    uri = store_archive(
        impatient,
        model_archive(tmp_path / "a.tar.gz", {"code/inference.py": raising}),
        "f/a.tar.gz",
    )
    name = deploy(sm, uri, wait=False)
    reason = failed_reason(sm, name)
    assert "model_fn raised ValueError: weights are corrupt" in reason

    hanging = "import time\n\ndef model_fn(model_dir):\n    time.sleep(3600)\n"
    uri = store_archive(
        impatient,
        model_archive(tmp_path / "b.tar.gz", {"code/inference.py": hanging}),
        "f/b.tar.gz",
    )
    name = deploy(sm, uri, wait=False)
    assert "did not answer GET /ping within 4 seconds" in failed_reason(sm, name)

    broken = store_archive(impatient, _write(tmp_path / "c.tar.gz", b"not a tarball"), "f/c.tar.gz")
    assert "not a valid tar.gz" in failed_reason(sm, deploy(sm, broken, wait=False))

    with pytest.raises(WaiterError, match="Failed"):
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 5}
        )


def test_gpu_instance_type_fails_clearly(impatient: SabioServer, monkeypatch: pytest.MonkeyPatch):
    sm, _ = clients(impatient, monkeypatch)
    name = unique("gpu")
    sm.create_model(
        ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": SKLEARN_IMAGE}
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "v",
                "ModelName": name,
                "InstanceType": "ml.g4dn.xlarge",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    assert "needs 1 GPU(s)" in failed_reason(sm, name)


@pytest.mark.slow
def test_environment_build_failure(
    impatient: SabioServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    sm, _ = clients(impatient, monkeypatch)
    files = {"code/inference.py": INFERENCE_PY, "code/requirements.txt": "roman==999.0.0\n"}
    uri = store_archive(impatient, model_archive(tmp_path / "m.tar.gz", files), "f/env.tar.gz")
    reason = failed_reason(sm, deploy(sm, uri, wait=False))
    assert "building the environment" in reason
    assert "roman" in reason


@pytest.mark.slow
def test_requirements_txt_brings_a_package_the_server_lacks(
    server: SabioServer, sm: Any, runtime: Any, tmp_path: Path
):
    if importlib.util.find_spec("roman") is not None:
        pytest.skip("the test environment already has 'roman'; the test needs a missing package")
    code = INFERENCE_PY.replace("import numpy as np", "import numpy as np\nimport roman").replace(
        'return json.dumps({"predictions": prediction.tolist()}), "application/json"',
        'return json.dumps([roman.toRoman(int(p) + 1) for p in prediction]), "application/json"',
    )
    files = {"code/inference.py": code, "code/requirements.txt": "roman==4.2\n"}
    uri = store_archive(
        server, model_archive(tmp_path / "m.tar.gz", files), f"{unique('req')}/m.tar.gz"
    )
    name = deploy(sm, uri)
    body = runtime.invoke_endpoint(
        EndpointName=name, ContentType="application/json", Body="[[5.1, 3.5, 1.4, 0.2]]"
    )["Body"].read()
    assert json.loads(body) == ["I"]
    # Only what the server lacks is installed; scikit-learn comes from the server's environment.
    site_packages = list((server.home / "environments").glob("*/lib/python*/site-packages"))
    assert any((p / "roman.py").exists() for p in site_packages)
    assert not any((p / "sklearn").exists() for p in site_packages)
    sm.delete_endpoint(EndpointName=name)


def test_model_errors_are_424_with_the_original_status(
    server: SabioServer, sm: Any, runtime: Any, tmp_path: Path
):
    code = INFERENCE_PY.replace(
        "def predict_fn(data, model):\n",
        "def predict_fn(data, model):\n"
        "    if data.size == 1:\n"
        "        raise RuntimeError('one value is not a row')\n",
    )
    uri = store_archive(
        server,
        model_archive(tmp_path / "m.tar.gz", {"code/inference.py": code}),
        f"{unique('err')}/m.tar.gz",
    )
    name = deploy(sm, uri)
    with pytest.raises(runtime.exceptions.ModelError) as excinfo:
        runtime.invoke_endpoint(EndpointName=name, ContentType="application/json", Body="[1]")
    error = excinfo.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 500
    assert "one value is not a row" in error["OriginalMessage"]
    assert error["Error"]["Message"].startswith("Received server error (500) from primary")
    assert error["LogStreamArn"].endswith(f"/aws/sagemaker/Endpoints/{name}")

    with pytest.raises(runtime.exceptions.ValidationError) as too_big:
        runtime.invoke_endpoint(
            EndpointName=name, ContentType="application/json", Body=b"[" + b"1," * (3 << 20) + b"1]"
        )
    assert too_big.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413

    with pytest.raises(runtime.exceptions.ValidationError) as missing:
        runtime.invoke_endpoint(
            EndpointName="no-such-endpoint", ContentType="application/json", Body="1"
        )
    assert missing.value.response["Error"]["Message"] == (
        "Endpoint no-such-endpoint of account 123456789012 not found."
    )
    with pytest.raises(runtime.exceptions.ValidationError, match=r"variant"):
        runtime.invoke_endpoint(EndpointName=name, Body="[[1,2,3,4]]", TargetVariant="nope")
    sm.delete_endpoint(EndpointName=name)


def test_a_dead_worker_is_replaced(server: SabioServer, sm: Any, runtime: Any, tmp_path: Path):
    code = INFERENCE_PY.replace(
        'return json.dumps({"predictions": prediction.tolist()}), "application/json"',
        'return json.dumps({"pid": os.getpid()}), "application/json"',
    )
    uri = store_archive(
        server,
        model_archive(tmp_path / "m.tar.gz", {"code/inference.py": code}),
        f"{unique('kill')}/m.tar.gz",
    )
    name = deploy(sm, uri)

    def pid() -> int:
        body = runtime.invoke_endpoint(
            EndpointName=name, ContentType="application/json", Body="[[1,2,3,4]]"
        )["Body"].read()
        return int(json.loads(body)["pid"])

    first = pid()
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 30
    second = None
    while time.monotonic() < deadline:
        try:
            second = pid()
            break
        except ClientError as error:
            assert error.response["Error"]["Code"] in ("ModelError", "ModelNotReadyException")
            time.sleep(0.1)
    assert second is not None and second != first
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
    sm.delete_endpoint(EndpointName=name)


def test_restart_keeps_endpoints_in_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "home"
    home.mkdir()
    first = SabioServer(home)
    first.start()
    try:
        sm, runtime = clients(first, monkeypatch)
        uri = store_archive(
            first,
            model_archive(tmp_path / "m.tar.gz", {"code/inference.py": INFERENCE_PY}),
            "r/m.tar.gz",
        )
        name = deploy(sm, uri)
        body = b"[[5.1, 3.5, 1.4, 0.2]]"
        answer = runtime.invoke_endpoint(
            EndpointName=name, ContentType="application/json", Body=body
        )
        before = answer["Body"].read()
        assert first.process is not None
        worker_pids = _descendants(first.process.pid)
        assert worker_pids
    finally:
        stopped = first.stop()
    assert stopped == 0
    assert all(not _alive(pid) for pid in worker_pids), "workers must stop with the server"

    second = SabioServer(home)
    second.port, second.url = first.port, first.url
    second.start()
    try:
        assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
        after = invoke_when_ready(runtime, name, body)
        assert after == before
    finally:
        second.stop()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _descendants(root: int) -> list[int]:
    """Every live process below `root`: its workers, forked or started afresh."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        parent = int(stat[stat.rfind(b")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()
