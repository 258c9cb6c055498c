"""Real-time endpoint instances start by a fork from their environment's pre-warmed parent once
one is warm, are replaced the same way when they die, start afresh when no parent can serve,
and a restarted server pre-warms the environments it used last."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from support.deploy import deploy, store_archive, unique
from support.models import model_archive
from support.server import SabioServer

WHO_AM_I = """\
import json, os

def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    return json.dumps({"pid": os.getpid(), "ppid": os.getppid()}), "application/json"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SabioServer]:
    running = SabioServer(
        tmp_path_factory.mktemp("prewarmed"),
        env={"SABIO_HEALTH_CHECK_INTERVAL_SECONDS": "0.5", "SABIO_WORKER_STOP_GRACE_SECONDS": "2"},
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def model_uri(server: SabioServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    archive = model_archive(
        tmp_path_factory.mktemp("who") / "model.tar.gz",
        {"code/inference.py": WHO_AM_I},
        with_model=False,
    )
    return store_archive(server, archive, f"{unique('who')}/model.tar.gz")


@pytest.fixture
def clients(server: SabioServer, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    return boto3.client("sagemaker"), boto3.client("sagemaker-runtime")


def who(runtime: Any, name: str) -> dict[str, int]:
    response = runtime.invoke_endpoint(EndpointName=name, ContentType="application/json", Body=b"1")
    answer: dict[str, int] = json.loads(response["Body"].read())
    return answer


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return int(stat[stat.rfind(b")") + 2 :].split()[1])


def prewarm_parents(home: Path) -> list[int]:
    """The pids of the server's ready pre-warmed parents, from their logs."""
    pids = []
    for log in (home / "logs" / "prewarm").glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if line.endswith(": ready") and "prewarm[" in line:
                pid = int(line.split("prewarm[", 1)[1].split("]", 1)[0])
                if "sabio.serving.prewarm" in command_line(pid):
                    pids.append(pid)
    return pids


def wait_for_parent(home: Path, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while not prewarm_parents(home):
        assert time.monotonic() < deadline, "no pre-warmed parent became ready"
        time.sleep(0.1)
    return prewarm_parents(home)[0]


def wait_for_new_worker(runtime: Any, name: str, old: int, timeout: float = 30) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = who(runtime, name)
        except runtime.exceptions.ClientError:
            answer = {"pid": old}
        if answer["pid"] != old:
            return answer
        assert time.monotonic() < deadline, f"worker {old} of {name} was never replaced"
        time.sleep(0.1)


def test_instances_fork_from_the_parent_and_fall_back_when_it_is_gone(
    server: SabioServer, model_uri: str, clients: tuple[Any, Any]
) -> None:
    sm, runtime = clients
    assert server.process is not None
    # Nothing is warm yet: the first endpoint starts its environment's parent and forks from
    # it once it has imported the frameworks; the next endpoint forks from it at once.
    first = deploy(sm, model_uri)
    parent = wait_for_parent(server.home)
    assert who(runtime, first)["ppid"] == parent
    second = deploy(sm, model_uri)
    forked = who(runtime, second)
    assert forked["ppid"] == parent

    # SAGEMAKER_MODEL_SERVER_WORKERS: the forked instance supervises its own server processes.
    prefork = deploy(sm, model_uri, environment={"SAGEMAKER_MODEL_SERVER_WORKERS": "2"})
    served = who(runtime, prefork)
    assert parent_of(served["ppid"]) == parent
    assert "sabio.serving.prewarm" in command_line(served["ppid"])  # a fork, not an exec

    # A forked worker that dies is replaced by another fork.
    os.kill(forked["pid"], signal.SIGKILL)
    replaced = wait_for_new_worker(runtime, second, forked["pid"])
    assert replaced["ppid"] == parent

    # Without its parent (its workers die with it), the endpoint is served again: by a fresh
    # process, or by a fork of the new parent that the first replacement started.
    os.kill(parent, signal.SIGKILL)
    fresh = wait_for_new_worker(runtime, second, replaced["pid"])
    assert fresh["ppid"] != parent
    if fresh["ppid"] != server.process.pid:
        assert "sabio.serving.prewarm" in command_line(fresh["ppid"])
    for name in (first, second, prefork):
        sm.delete_endpoint(EndpointName=name)


def test_a_restarted_server_prewarms_the_environments_it_used(
    server: SabioServer, model_uri: str, clients: tuple[Any, Any]
) -> None:
    sm, runtime = clients
    used = deploy(sm, model_uri)
    sm.delete_endpoint(EndpointName=used)
    server.stop()
    server.start()
    assert server.process is not None
    parent = wait_for_parent(server.home)  # with no endpoint to start it

    name = deploy(sm, model_uri)
    assert who(runtime, name)["ppid"] == parent
    sm.delete_endpoint(EndpointName=name)
