"""Faults a serving endpoint survives: a handler that hangs past the model server timeout, and a
worker that stops answering its health checks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from support.deploy import deploy, store_archive
from support.models import model_archive
from support.server import SabioServer

SLOW = """\
import json, os, time

def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    request = json.loads(body)
    time.sleep(request.get("sleep", 0))
    return json.dumps({"pid": os.getpid()}), "application/json"
"""


@pytest.fixture(scope="module")
def watchful(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SabioServer]:
    """A server that pings its workers every half second."""
    running = SabioServer(
        tmp_path_factory.mktemp("watchful"), env={"SABIO_HEALTH_CHECK_INTERVAL_SECONDS": "0.5"}
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_hung_handler_times_out_and_a_silent_worker_is_replaced(
    watchful: SabioServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AWS_ENDPOINT_URL", watchful.url)
    sm, runtime = boto3.client("sagemaker"), boto3.client("sagemaker-runtime")
    archive = model_archive(tmp_path / "slow.tar.gz", {"code/inference.py": SLOW}, with_model=False)
    uri = store_archive(watchful, archive, "faults/slow.tar.gz")
    name = deploy(sm, uri, environment={"SAGEMAKER_MODEL_SERVER_TIMEOUT": "1"})

    def call(**body: Any) -> dict[str, Any]:
        response = runtime.invoke_endpoint(
            EndpointName=name, ContentType="application/json", Body=json.dumps(body)
        )
        return dict(json.loads(response["Body"].read()))

    started = time.monotonic()
    with pytest.raises(ClientError) as timed_out:
        call(sleep=3)
    assert time.monotonic() - started < 2.5
    assert timed_out.value.response["Error"]["Code"] == "ModelError"
    assert "timed out" in timed_out.value.response["Error"]["Message"]

    time.sleep(2.5)  # the hung request has finished; the worker answers again
    pid = call()["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 40
        while True:
            try:
                replacement = call()["pid"]
                if replacement != pid:
                    break
            except ClientError as error:
                assert error.response["Error"]["Code"] in ("ModelError", "ModelNotReadyException")
            assert time.monotonic() < deadline, "the silent worker was never replaced"
            time.sleep(0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    assert "stopped answering /ping" in watchful.logs()
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
    sm.delete_endpoint(EndpointName=name)
