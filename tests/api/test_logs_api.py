"""The CloudWatch Logs API driven by a real boto3 `logs` client over HTTP, the way
`fit(logs=True)`, `sabio logs` and users' scripts reach it."""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import boto3
import pytest
import uvicorn
from botocore.exceptions import ClientError
from starlette.applications import Starlette
from starlette.routing import Route

from sabio.api.logs import TARGET_PREFIX, LogsApi
from sabio.cli import logs as logs_cli
from sabio.telemetry.logs import LogStore
from support.deploy import unique
from support.server import free_port

TRAINING = "/aws/sagemaker/TrainingJobs"


class LogsServer(NamedTuple):
    url: str
    store: LogStore


@pytest.fixture(scope="module")
def logs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogsServer]:
    """LogsApi alone, served by uvicorn on a free loopback port in a background thread."""
    store = LogStore(tmp_path_factory.mktemp("cloudwatch"))
    app = Starlette(routes=[Route("/", LogsApi(store).handle, methods=["POST"])])
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", ws="none", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="logs-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the Logs API server did not start")
        time.sleep(0.01)
    try:
        yield LogsServer(f"http://127.0.0.1:{port}", store)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        assert not thread.is_alive()


@pytest.fixture
def logs(logs_server: LogsServer) -> Any:
    return boto3.client("logs", endpoint_url=logs_server.url)


def error_of(caught: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def test_write_then_read_a_stream(logs: Any) -> None:
    group = f"/sabio/test/{unique('g')}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="app/1")
    now = int(time.time() * 1000)
    put = logs.put_log_events(
        logGroupName=group,
        logStreamName="app/1",
        logEvents=[{"timestamp": now + i, "message": f"hello {i}"} for i in range(5)],
    )
    assert put["nextSequenceToken"]

    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="app/")
    [stream] = streams["logStreams"]
    assert stream["logStreamName"] == "app/1"
    assert stream["firstEventTimestamp"] == now
    assert stream["lastEventTimestamp"] == now + 4
    assert stream["arn"].endswith(f"log-group:{group}:log-stream:app/1")

    tail = logs.get_log_events(logGroupName=group, logStreamName="app/1", limit=2)
    assert [e["message"] for e in tail["events"]] == ["hello 3", "hello 4"]
    assert tail["events"][0]["ingestionTime"] >= now - 60_000

    groups = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert [g["logGroupName"] for g in groups] == [group]
    arn = groups[0]["logGroupArn"]
    by_arn = logs.get_log_events(logGroupIdentifier=arn, logStreamName="app/1", limit=1)
    assert [e["message"] for e in by_arn["events"]] == ["hello 4"]


def test_paging_until_the_forward_token_repeats(logs: Any, logs_server: LogsServer) -> None:
    stream = f"{unique('job')}/algo-1-1700000000"
    logs_server.store.append(TRAINING, stream, [(1000 + i, f"line {i}") for i in range(23)])
    seen: list[str] = []
    token: str | None = None
    calls = 0
    while True:
        extra = {"nextToken": token} if token else {}
        page = logs.get_log_events(
            logGroupName=TRAINING, logStreamName=stream, startFromHead=True, limit=5, **extra
        )
        calls += 1
        seen += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == token:
            break
        token = page["nextForwardToken"]
    assert seen == [f"line {i}" for i in range(23)]
    assert calls == 6

    backward = logs.get_log_events(
        logGroupName=TRAINING, logStreamName=stream, limit=5, nextToken="b/10"
    )
    assert [e["message"] for e in backward["events"]] == [f"line {i}" for i in range(5, 10)]
    assert backward["nextBackwardToken"] == "b/5"


def test_filter_across_streams_with_the_paginator(logs: Any, logs_server: LogsServer) -> None:
    job = unique("job")
    logs_server.store.append(
        TRAINING, f"{job}/algo-1-1", [(t, f"a {t} loss") for t in range(0, 40, 2)]
    )
    logs_server.store.append(
        TRAINING, f"{job}/algo-2-1", [(t, f"b {t} loss") for t in range(1, 40, 2)]
    )
    logs_server.store.append(TRAINING, f"{job}/algo-2-1", [(50, "b 50 ERROR")])

    paginator = logs.get_paginator("filter_log_events")
    events = [
        event
        for page in paginator.paginate(
            logGroupName=TRAINING,
            logStreamNamePrefix=f"{job}/",
            filterPattern="loss",
            PaginationConfig={"PageSize": 6},
        )
        for event in page["events"]
    ]
    assert [e["timestamp"] for e in events] == list(range(40))
    assert events[1]["logStreamName"] == f"{job}/algo-2-1"

    errors = logs.filter_log_events(
        logGroupName=TRAINING,
        logStreamNames=[f"{job}/algo-1-1", f"{job}/algo-2-1"],
        filterPattern='"ERROR"',
        startTime=10,
    )
    assert [e["message"] for e in errors["events"]] == ["b 50 ERROR"]
    assert "nextToken" not in errors

    streams = logs.get_paginator("describe_log_streams").paginate(
        logGroupName=TRAINING, logStreamNamePrefix=f"{job}/", PaginationConfig={"PageSize": 1}
    )
    names = [s["logStreamName"] for page in streams for s in page["logStreams"]]
    assert names == [f"{job}/algo-1-1", f"{job}/algo-2-1"]


def test_errors_are_cloudwatchs(logs: Any) -> None:
    with pytest.raises(logs.exceptions.ResourceNotFoundException) as missing:
        logs.get_log_events(logGroupName="/no/such/group", logStreamName="s")
    assert error_of(missing) == (
        "ResourceNotFoundException",
        "The specified log group does not exist.",
        400,
    )
    group = f"/sabio/test/{unique('g')}"
    logs.create_log_group(logGroupName=group)
    with pytest.raises(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=group)
    with pytest.raises(logs.exceptions.ResourceNotFoundException) as no_stream:
        logs.put_log_events(
            logGroupName=group, logStreamName="s", logEvents=[{"timestamp": 1, "message": "x"}]
        )
    assert error_of(no_stream)[1] == "The specified log stream does not exist."
    with pytest.raises(logs.exceptions.InvalidParameterException) as invalid:
        logs.create_log_group(logGroupName="bad name!")
    assert error_of(invalid)[1] == (
        "1 validation error detected: Value 'bad name!' at 'logGroupName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+"
    )
    with pytest.raises(logs.exceptions.InvalidParameterException):
        logs.describe_log_streams(logStreamNamePrefix="x")  # neither name nor identifier
    with pytest.raises(logs.exceptions.InvalidParameterException):
        logs.filter_log_events(logGroupName=group, filterPattern="{ $.level = 1 }")
    logs.delete_log_group(logGroupName=group)
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.delete_log_group(logGroupName=group)


def raw(url: str, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{url}/",
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_unknown_and_unimplemented_operations(logs_server: LogsServer) -> None:
    assert raw(logs_server.url, f"{TARGET_PREFIX}Nope", b"{}") == (
        400,
        {"__type": "UnknownOperationException", "message": "Unknown operation Nope."},
    )
    status, body = raw(logs_server.url, f"{TARGET_PREFIX}PutRetentionPolicy", b"{}")
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    assert body["message"] == "Sabio does not implement the operation PutRetentionPolicy yet."
    status, body = raw(logs_server.url, "SageMaker.ListModels", b"{}")
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    status, body = raw(logs_server.url, f"{TARGET_PREFIX}DescribeLogGroups", b"{not json")
    assert (status, body["__type"]) == (400, "SerializationException")


# What the SageMaker Python SDK does for `fit(logs=True)` and `logs_for_job`, restated: list the
# job's streams, read each from a (timestamp, events-to-skip) position with startTime and
# startFromHead until a page comes back empty, merge the streams by timestamp, and poll again.


class Position(NamedTuple):
    timestamp: int
    skip: int


def sdk_stream(client: Any, group: str, stream: str, start: int, skip: int) -> Iterator[Any]:
    token = None
    while True:
        extra = {"nextToken": token} if token is not None else {}
        page = client.get_log_events(
            logGroupName=group,
            logStreamName=stream,
            startTime=start,
            startFromHead=True,
            **extra,
        )
        token = page["nextForwardToken"]
        events = page["events"]
        if not events:
            return
        if len(events) > skip:
            events, skip = events[skip:], 0
        else:
            events, skip = [], skip - len(events)
        yield from events


def sdk_poll(client: Any, job: str, positions: dict[str, Position]) -> list[tuple[str, str]]:
    described = client.describe_log_streams(
        logGroupName=TRAINING, logStreamNamePrefix=f"{job}/", orderBy="LogStreamName", limit=50
    )
    streams = [s["logStreamName"] for s in described["logStreams"]]
    for stream in streams:
        positions.setdefault(stream, Position(0, 0))
    iterators = [
        sdk_stream(client, TRAINING, s, positions[s].timestamp, positions[s].skip) for s in streams
    ]
    heads: list[Any] = [next(it, None) for it in iterators]
    printed = []
    while any(head is not None for head in heads):
        i = min(
            (n for n, head in enumerate(heads) if head is not None),
            key=lambda n: heads[n]["timestamp"],
        )
        event, stream = heads[i], streams[i]
        printed.append((stream, event["message"]))
        timestamp, count = positions[stream]
        if event["timestamp"] == timestamp:
            positions[stream] = Position(timestamp, count + 1)
        else:
            positions[stream] = Position(event["timestamp"], 1)
        heads[i] = next(iterators[i], None)
    return printed


def test_the_sagemaker_sdk_log_loop_prints_each_line_once(
    logs: Any, logs_server: LogsServer
) -> None:
    job = unique("sdk-job")
    store = logs_server.store
    positions: dict[str, Position] = {}
    assert sdk_poll(logs, job, positions) == []  # no streams yet

    first, second = f"{job}/algo-1-1700000000", f"{job}/algo-2-1700000000"
    store.append(TRAINING, first, [(100, "a1"), (100, "a2"), (105, "a3")])
    store.append(TRAINING, second, [(101, "b1")])
    assert sdk_poll(logs, job, positions) == [
        (first, "a1"),
        (first, "a2"),
        (second, "b1"),
        (first, "a3"),
    ]
    assert sdk_poll(logs, job, positions) == []  # nothing new, nothing repeated

    store.append(TRAINING, first, [(105, "a4"), (110, "a5")])  # same millisecond as a3
    with store.stream_writer(TRAINING, second) as sink:
        sink.write("b2 partial ")
        sink.write("line\n")
    printed = sdk_poll(logs, job, positions)
    assert sorted(printed) == [(first, "a4"), (first, "a5"), (second, "b2 partial line")]

    many = [(200 + i // 3, f"bulk {i}") for i in range(25_000)]  # more than one page
    store.append(TRAINING, first, many)
    printed = sdk_poll(logs, job, positions)
    assert [message for _, message in printed] == [m for _, m in many]
    assert sdk_poll(logs, job, positions) == []


def test_sabio_logs_reads_through_the_api(
    logs_server: LogsServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    job = unique("cli-job")
    logs_server.store.append(TRAINING, f"{job}/algo-1-1", [(1_700_000_000_000, "from the api")])
    parser = argparse.ArgumentParser()
    logs_cli.add_arguments(parser)

    assert logs_cli.run(parser.parse_args([job, "--endpoint-url", logs_server.url])) == 0
    assert capsys.readouterr().out == (f"2023-11-14T22:13:20.000Z {job}/algo-1-1 from the api\n")
    assert logs_cli.run(parser.parse_args(["/no/group", "--endpoint-url", logs_server.url])) == 1
    assert "does not exist" in capsys.readouterr().err

    closed = f"http://127.0.0.1:{free_port()}"
    assert logs_cli.run(parser.parse_args([job, "--endpoint-url", closed])) == 1
    assert "cannot reach Sabio" in capsys.readouterr().err
