"""InvokeEndpointWithResponseStream through boto3: a handler that yields chunks is streamed as
PayloadParts while it runs; a failure mid-stream is a ModelStreamError event."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EventStreamError

from support.deploy import deploy, invoke_when_ready, store_code_model, unique
from support.server import SabioServer

STREAMING = """\
import asyncio, json, os, time

def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    request = json.loads(body)
    if request.get("whole"):
        return json.dumps({"whole": True}), "application/json"
    if request.get("async"):
        return _async_parts(request["parts"]), "text/plain"
    return _parts(request), "text/plain"

def _parts(request):
    for i in range(request["parts"]):
        if request.get("fail_at") == i:
            raise RuntimeError("the model broke mid-stream")
        yield f"part-{i};"
        time.sleep(request.get("stall", 0))
        release = request.get("release")
        if release and i == 0:
            deadline = time.monotonic() + 20
            while not os.path.exists(release) and time.monotonic() < deadline:
                time.sleep(0.01)
            yield "released;" if os.path.exists(release) else "not-released;"

async def _async_parts(count):
    for i in range(count):
        await asyncio.sleep(0)
        yield f"async-{i};".encode()
"""


@pytest.fixture(scope="module")
def endpoint(server: SabioServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = store_code_model(server, tmp_path_factory.mktemp("stream"), STREAMING, "stream")
    sm = boto3.client("sagemaker", endpoint_url=server.url)
    return deploy(
        sm, uri, name=unique("stream"), environment={"SAGEMAKER_MODEL_SERVER_TIMEOUT": "2"}
    )


def stream(runtime: Any, name: str, request: dict[str, Any], **extra: Any) -> Any:
    return runtime.invoke_endpoint_with_response_stream(
        EndpointName=name, ContentType="application/json", Body=json.dumps(request), **extra
    )


def test_chunks_arrive_as_separate_parts_before_the_handler_ends(
    endpoint: str, runtime: Any, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    response = stream(runtime, endpoint, {"parts": 3, "release": str(release)})
    assert response["ContentType"] == "text/plain"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    events = iter(response["Body"])
    # The handler is still waiting for `release`: the first part must already be here.
    assert next(events) == {"PayloadPart": {"Bytes": b"part-0;"}}
    release.touch()
    rest = [event["PayloadPart"]["Bytes"] for event in events]
    assert rest == [b"released;", b"part-1;", b"part-2;"]


def test_async_generators_stream_and_invoke_endpoint_gets_the_whole_body(
    endpoint: str, runtime: Any
) -> None:
    parts = [
        e["PayloadPart"]["Bytes"]
        for e in stream(runtime, endpoint, {"parts": 3, "async": 1})["Body"]
    ]
    assert parts == [b"async-0;", b"async-1;", b"async-2;"]
    whole = runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType="application/json", Body=json.dumps({"parts": 3})
    )
    assert whole["Body"].read() == b"part-0;part-1;part-2;"
    # A handler answering with one body gives one part.
    single = [e["PayloadPart"]["Bytes"] for e in stream(runtime, endpoint, {"whole": True})["Body"]]
    assert single == [b'{"whole": true}']


def test_failure_mid_stream_is_a_model_stream_error(endpoint: str, runtime: Any) -> None:
    body = stream(runtime, endpoint, {"parts": 3, "fail_at": 1})["Body"]
    events = iter(body)
    assert next(events) == {"PayloadPart": {"Bytes": b"part-0;"}}
    with pytest.raises(EventStreamError) as raised:
        next(events)
    body.close()
    error = raised.value.response["Error"]
    assert error["Code"] == "ModelStreamError"
    assert "closed its response stream" in error["Message"]
    # The instance keeps serving.
    parts = [e["PayloadPart"]["Bytes"] for e in stream(runtime, endpoint, {"parts": 1})["Body"]]
    assert parts == [b"part-0;"]


def test_a_stream_past_the_model_server_timeout_ends_with_an_error(
    endpoint: str, runtime: Any
) -> None:
    body = stream(runtime, endpoint, {"parts": 2, "stall": 4})["Body"]
    events = iter(body)
    assert next(events) == {"PayloadPart": {"Bytes": b"part-0;"}}
    with pytest.raises(EventStreamError) as raised:
        next(events)
    body.close()
    assert raised.value.response["Error"]["Code"] == "ModelStreamError"
    assert "did not finish its response within the invocation timeout" in str(raised.value)


def test_invoke_endpoint_on_a_stream_that_breaks_is_a_model_error(
    endpoint: str, runtime: Any
) -> None:
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(
            EndpointName=endpoint,
            ContentType="application/json",
            Body=json.dumps({"parts": 3, "fail_at": 1}),
        )
    assert raised.value.response["Error"]["Code"] == "ModelError"
    # The worker is alive: it serves again, at the latest after its next health check.
    again = invoke_when_ready(runtime, endpoint, json.dumps({"parts": 1}).encode(), timeout=20)
    assert again == b"part-0;"


def test_failure_before_the_first_part_is_a_model_error(endpoint: str, runtime: Any) -> None:
    with pytest.raises(ClientError) as raised:
        stream(runtime, endpoint, {"parts": 2, "fail_at": 0})
    assert raised.value.response["Error"]["Code"] == "ModelError"
    assert raised.value.response["OriginalStatusCode"] == 500
    assert "the model broke mid-stream" in raised.value.response["OriginalMessage"]


def test_unknown_endpoint_and_variant(endpoint: str, runtime: Any) -> None:
    with pytest.raises(ClientError) as raised:
        stream(runtime, unique("absent"), {"parts": 1})
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert "not found" in raised.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as raised:
        stream(runtime, endpoint, {"parts": 1}, TargetVariant="Nope")
    assert raised.value.response["Error"]["Code"] == "ValidationError"


def test_streamed_invocations_are_counted(endpoint: str, runtime: Any, endpoint_url: str) -> None:
    name = endpoint
    for _ in range(2):
        list(stream(runtime, name, {"parts": 2})["Body"])
    cloudwatch = boto3.client("cloudwatch")
    now = datetime.now(UTC)
    deadline = time.monotonic() + 10
    while True:
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName="Invocations",
            Dimensions=[
                {"Name": "EndpointName", "Value": name},
                {"Name": "VariantName", "Value": "AllTraffic"},
            ],
            StartTime=now - timedelta(minutes=20),
            EndTime=now + timedelta(minutes=5),
            Period=3600,
            Statistics=["Sum"],
        )["Datapoints"]
        if points or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert points and points[0]["Sum"] >= 2
