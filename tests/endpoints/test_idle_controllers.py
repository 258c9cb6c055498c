"""An idle server leaves its store alone: controllers read it only after a change.

Store reads run in worker threads that hold the GIL; read every second by every controller,
they land in front of about one invocation in a hundred. So passes supervise from memory,
and read only after an API call or one of their own actions changed something."""

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

from support.deploy import deploy, store_code_model
from support.server import SabioServer, metric_value, running_server

QUIET = 1.5

WHO = """\
import json, os

def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    return json.dumps({"pid": os.getpid()}), "application/json"
"""


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SabioServer]:
    """A server whose controllers would pass ten times a second if they polled the store."""
    env = {"SABIO_RECONCILE_INTERVAL_SECONDS": "0.1", "SABIO_AUTOSCALING_INTERVAL_SECONDS": "0.1"}
    with running_server(tmp_path_factory.mktemp("idle"), env) as server:
        yield server


def store_reads(server: SabioServer) -> int:
    return metric_value(server, "sabio_controller_store_reads_total")


def worker_pid(runtime: Any, name: str) -> int:
    response = runtime.invoke_endpoint(EndpointName=name, ContentType="application/json", Body="{}")
    return int(json.loads(response["Body"].read())["pid"])


def test_controllers_read_the_store_only_after_a_change(
    busy_server: SabioServer, tmp_path: Path
) -> None:
    sm = boto3.client("sagemaker", endpoint_url=busy_server.url)
    runtime = boto3.client("sagemaker-runtime", endpoint_url=busy_server.url)
    name = deploy(sm, store_code_model(busy_server, tmp_path, WHO, "who"))
    first = worker_pid(runtime, name)
    time.sleep(0.5)  # the deployment's own last notices

    before = store_reads(busy_server)
    time.sleep(QUIET)
    assert store_reads(busy_server) == before, "an idle server read its store"

    # Supervision goes on from memory: a worker that dies is replaced, with no store read.
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        try:
            replacement = worker_pid(runtime, name)
            if replacement != first:
                break
        except runtime.exceptions.ClientError:
            pass
        assert time.monotonic() < deadline, "the dead worker was not replaced"
        time.sleep(0.1)
    assert store_reads(busy_server) == before

    # A change through the API is read at once.
    sm.update_endpoint_weights_and_capacities(
        EndpointName=name,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredWeight": 2.5}],
    )
    deadline = time.monotonic() + 10
    while True:
        variant = sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
        if variant["CurrentWeight"] == 2.5:
            break
        assert time.monotonic() < deadline, variant
        time.sleep(0.1)
    assert store_reads(busy_server) > before
