"""Against a live server: the asynchronous inference dispatcher does not poll while no
asynchronous endpoint exists and serves one created later at once; requests queued for an
endpoint that is deleted are failed then (each failure object written and each error
notification sent once, even when the server is killed and restarted in between)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from asyncinference.async_helpers import FAST, deploy_async, echo_model, wait_for_object
from asyncinference.sns_helpers import confirmed, notifications
from notifications.conftest import FAST_RETRIES, Listener
from support.deploy import deploy, unique
from support.server import SabioServer, metric_value, running_server

SETTLE = 1.0  # longer than the delivery retries wait (FAST_RETRIES)
QUIET = 2.0  # more than ten poll intervals (FAST) and two endpoint refreshes


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SabioServer]:
    home = tmp_path_factory.mktemp("async-deletion-home")
    with running_server(home, {**FAST, **FAST_RETRIES}) as running:
        yield running


@pytest.fixture
def clients(server: SabioServer, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, Any]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    return boto3.client("sagemaker"), boto3.client("sagemaker-runtime"), boto3.client("s3")


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener() as running:
        yield running


def polls(server: SabioServer) -> int:
    """The dispatcher's passes over the queue, as `/metrics` shows them."""
    return metric_value(server, "sabio_async_queue_polls_total")


def quiet(server: SabioServer) -> bool:
    before = polls(server)
    time.sleep(QUIET)
    return polls(server) == before


def test_the_dispatcher_idles_until_an_async_endpoint_appears(
    clients: Any, server: SabioServer, tmp_path: Path
) -> None:
    sm, runtime, s3 = clients
    model = echo_model(server, tmp_path)
    realtime = deploy(sm, model)
    assert quiet(server), "polled the queue with no asynchronous endpoint"

    name, _ = deploy_async(sm, s3, model)
    started = time.monotonic()
    answered = runtime.invoke_endpoint_async(EndpointName=name, Body=b'{"first": 1}')
    assert json.loads(wait_for_object(s3, answered["OutputLocation"]))["echo"] == {"first": 1}
    assert time.monotonic() - started < 3
    assert not quiet(server), "an asynchronous endpoint is watched"

    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
    )
    assert quiet(server), "still polling after the last asynchronous endpoint went"
    sm.delete_endpoint(EndpointName=realtime)


def test_deleting_an_endpoint_fails_its_queued_requests_once_across_a_restart(
    clients: Any, server: SabioServer, listener: Listener, tmp_path: Path
) -> None:
    sm, runtime, s3 = clients
    topic = confirmed(boto3.client("sns"), listener, unique("async-deleted"))
    bucket = unique("deleted")
    name, _ = deploy_async(
        sm,
        s3,
        echo_model(server, tmp_path),
        bucket=bucket,
        OutputConfig={
            "S3OutputPath": f"s3://{bucket}/results",
            "S3FailurePath": f"s3://{bucket}/failures",
            "NotificationConfig": {"ErrorTopic": topic},
        },
    )
    sm.update_endpoint_weights_and_capacities(
        EndpointName=name,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 0}],
    )
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
    )
    queued = {
        r["InferenceId"]: r
        for r in (
            runtime.invoke_endpoint_async(
                EndpointName=name, Body=json.dumps({"n": n}).encode(), ContentType="text/json"
            )
            for n in range(5)
        )
    }

    sm.delete_endpoint(EndpointName=name)
    assert server.process is not None
    server.process.kill()  # at once: the failures may be written before, after, or both
    server.process.wait()
    server.start()

    for inference_id, request in queued.items():
        failure = wait_for_object(s3, request["FailureLocation"]).decode()
        assert failure == (
            f"ClientError: Request {inference_id} was not processed: endpoint {name} was "
            "deleted before the request was answered."
        )

    def all_sent(got: list[Any]) -> bool:
        return len(notifications(got)) >= len(queued)

    listener.wait_for(all_sent)
    time.sleep(SETTLE)  # a duplicate would arrive within this
    sent = [json.loads(d["Message"]) for d in notifications(listener.wait_for(all_sent))]
    assert sorted(m["inferenceId"] for m in sent) == sorted(queued)
    for message in sent:
        assert message["invocationStatus"] == "Failed"
        assert message["failureReason"].endswith("was deleted before the request was answered.")
        assert message["requestParameters"] == {"endpointName": name, "contentType": "text/json"}
        assert message["responseParameters"] == {
            "failureLocation": queued[message["inferenceId"]]["FailureLocation"]
        }
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(
        r["FailureLocation"].removeprefix(f"s3://{bucket}/") for r in queued.values()
    )
    with sqlite3.connect(server.home / "sabio.db") as db:
        assert db.execute("SELECT count(*) FROM async_invocations").fetchone() == (0,)
    assert quiet(server), "still polling after the endpoint went"
