"""Results and failures are published to the endpoint's SNS topics in SageMaker's message
format, and a request that outlives its RequestTTLSeconds is answered with an expiry failure.

The server runs in this process (uvicorn on a free loopback port) so that its dispatcher can
publish through a `RecordingPublisher`."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import uvicorn
from sqlalchemy import update

from asyncinference.async_helpers import (
    completed_event,
    deploy_async,
    echo_model,
    put_input,
    wait_for_object,
)
from asyncinference.recording_publisher import RecordingPublisher
from sabio.config import Settings
from sabio.server import build_app
from sabio.store.rows import AsyncInvocationRow
from support.server import SabioServer, free_port

SUCCESS = "arn:aws:sns:us-east-1:123456789012:async-success"
ERROR = "arn:aws:sns:us-east-1:123456789012:async-error"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class InProcessServer:
    def __init__(self, home: Path) -> None:
        port = free_port()
        settings = Settings(
            home=home,
            port=port,
            reconcile_interval_seconds=0.2,
            async_poll_interval_seconds=0.1,
            async_lease_seconds=2,
        )
        app, self.platform = build_app(settings, {"PATH": "/usr/bin:/bin"})
        self.publisher = RecordingPublisher()
        self.platform.dispatcher.publisher = self.publisher
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.url = f"http://127.0.0.1:{port}"
        self.home = home
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()))

    def __enter__(self) -> InProcessServer:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            threading.Event().wait(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    with InProcessServer(tmp_path_factory.mktemp("notify-home")) as running:
        yield running


def published(publisher: RecordingPublisher, topic: str, inference_id: str) -> dict[str, Any]:
    for _ in range(200):
        for message in publisher.on(topic):
            parsed: dict[str, Any] = json.loads(message)
            if parsed["inferenceId"] == inference_id:
                return parsed
        threading.Event().wait(0.1)
    raise AssertionError(f"nothing published to {topic} for {inference_id}")


def test_results_failures_and_expiry_are_published(
    served: InProcessServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", served.url)
    sm, s3 = boto3.client("sagemaker"), boto3.client("s3")
    runtime = boto3.client("sagemaker-runtime")
    stand_in = SabioServer(served.home)  # where deploy helpers put model archives
    name, bucket = deploy_async(
        sm,
        s3,
        echo_model(stand_in, tmp_path),
        OutputConfig={
            "S3OutputPath": "s3://notified/results",
            "S3FailurePath": "s3://notified/failures",
            "NotificationConfig": {
                "SuccessTopic": SUCCESS,
                "ErrorTopic": ERROR,
                "IncludeInferenceResponseIn": ["SUCCESS_NOTIFICATION_TOPIC"],
            },
        },
        bucket="notified",
    )
    source = put_input(s3, bucket, "in/ok.json", {"ok": 1})
    ok = runtime.invoke_endpoint_async(
        EndpointName=name, InputLocation=source, ContentType="application/json"
    )
    message = published(served.publisher, SUCCESS, ok["InferenceId"])
    assert ISO.match(message.pop("eventTime")) and ISO.match(message.pop("receivedTime"))
    answer = wait_for_object(s3, ok["OutputLocation"]).decode()
    assert message == completed_event(name, source, ok["OutputLocation"], answer, ok["InferenceId"])

    bad = runtime.invoke_endpoint_async(EndpointName=name, Body=b'{"fail": "no"}')
    failed = published(served.publisher, ERROR, bad["InferenceId"])
    assert failed["invocationStatus"] == "Failed"
    assert failed["failureReason"].startswith("ClientError: Received server error (500)")
    assert failed["responseParameters"] == {"failureLocation": bad["FailureLocation"]}
    assert "asked to fail: no" in wait_for_object(s3, bad["FailureLocation"]).decode()

    # A request that waits (no instance) until its time to live has run out.
    sm.update_endpoint_weights_and_capacities(
        EndpointName=name,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 0}],
    )
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
    )
    late = runtime.invoke_endpoint_async(EndpointName=name, Body=b"{}", RequestTTLSeconds=60)
    # Sixty seconds pass: the request's deadline is moved instead of waiting for it.
    with served.platform.repository.engine.begin() as connection:
        connection.execute(
            update(AsyncInvocationRow)
            .where(AsyncInvocationRow.inference_id == late["InferenceId"])
            .values(expires_at=AsyncInvocationRow.received_at - 1)
        )
    expired = published(served.publisher, ERROR, late["InferenceId"])
    assert "RequestTTLSeconds (60 seconds)" in expired["failureReason"]
    assert "expired" in wait_for_object(s3, late["FailureLocation"]).decode()
