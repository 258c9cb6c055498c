"""SAGEMAKER_MODEL_SERVER_WORKERS: several model-server processes behind one instance."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from support.deploy import deploy, store_archive, unique, wait_for_status
from support.models import model_archive
from support.server import SabioServer

SLOW_PID = """\
import json, os, time

def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    time.sleep(json.loads(body)["sleep"])
    return json.dumps({"pid": os.getpid(), "parent": os.getppid()}), "application/json"
"""


def pid_model(server: SabioServer, tmp_path: Path) -> str:
    archive = model_archive(
        tmp_path / "pid.tar.gz", {"code/inference.py": SLOW_PID}, with_model=False
    )
    return store_archive(server, archive, f"{unique('workers')}/model.tar.gz")


def answer(runtime: Any, name: str, sleep: float) -> dict[str, int]:
    response = runtime.invoke_endpoint(
        EndpointName=name, ContentType="application/json", Body=json.dumps({"sleep": sleep})
    )
    return json.loads(response["Body"].read())  # type: ignore[no-any-return]


def test_concurrent_invocations_are_served_by_separate_processes(
    server: SabioServer, sm: Any, runtime: Any, tmp_path: Path
) -> None:
    name = deploy(
        sm, pid_model(server, tmp_path), environment={"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    )
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: answer(runtime, name, 0.4), range(6)))
    pids = {a["pid"] for a in answers}
    assert len(pids) == 2
    # Both are children of one supervisor, which is the instance the platform runs.
    assert len({a["parent"] for a in answers}) == 1

    # One process dying takes the instance down, and the platform replaces it whole.
    os.kill(pids.pop(), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        try:
            fresh = answer(runtime, name, 0)
            if fresh["parent"] != answers[0]["parent"]:
                break
        except ClientError as error:
            assert error.response["Error"]["Code"] in ("ModelError", "ModelNotReadyException")
        assert time.monotonic() < deadline, "the instance was not replaced"
        time.sleep(0.1)
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"


def test_an_invalid_worker_count_fails_the_endpoint(
    server: SabioServer, sm: Any, tmp_path: Path
) -> None:
    name = deploy(
        sm,
        pid_model(server, tmp_path),
        environment={"SAGEMAKER_MODEL_SERVER_WORKERS": "many"},
        wait=False,
    )
    described = wait_for_status(sm, name, {"Failed", "InService"})
    assert described["EndpointStatus"] == "Failed"
    assert (
        "SAGEMAKER_MODEL_SERVER_WORKERS='many' is not a whole number"
        in (described["FailureReason"])
    )
