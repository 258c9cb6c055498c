"""The on-disk log store: CloudWatch's paging and token rules, safety of names, crash repair,
concurrent writers, and turning process output into events."""

from __future__ import annotations

import argparse
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sabio.cli import logs as logs_cli
from sabio.errors import InvalidParameterError, LogResourceNotFoundError
from sabio.telemetry.logs import (
    GROUP_NOT_FOUND,
    STREAM_NOT_FOUND,
    LineSink,
    LogResourceAlreadyExistsError,
    LogStore,
    store_root,
)

GROUP = "/aws/sagemaker/TrainingJobs"


@pytest.fixture
def store(tmp_path: Path) -> LogStore:
    return LogStore(tmp_path / "cloudwatch")


def messages(page: dict[str, Any]) -> list[str]:
    return [e["message"] for e in page["events"]]


def fill(store: LogStore, stream: str, count: int, start: int = 1000) -> None:
    store.append(GROUP, stream, [(start + i, f"line {i}") for i in range(count)])


# Streams and groups


def test_streams_are_described_with_their_first_and_last_events(store: LogStore) -> None:
    fill(store, "job/algo-1-1700000000", 3)
    store.append(GROUP, "other/algo-1-1", [(5, "x")])
    store.append(GROUP, "job/algo-2-1700000000", ())

    page = store.describe_log_streams(GROUP, prefix="job/")
    streams = page["logStreams"]
    assert [s["logStreamName"] for s in streams] == [
        "job/algo-1-1700000000",
        "job/algo-2-1700000000",
    ]
    first = streams[0]
    assert first["firstEventTimestamp"] == 1000
    assert first["lastEventTimestamp"] == 1002
    assert first["lastIngestionTime"] >= first["creationTime"]
    assert first["storedBytes"] == 0
    assert first["arn"] == (
        "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/TrainingJobs"
        ":log-stream:job/algo-1-1700000000"
    )
    assert "firstEventTimestamp" not in streams[1]  # no events yet
    assert "nextToken" not in page


def test_stream_listing_pages_and_orders(store: LogStore) -> None:
    for n in range(7):
        store.append(GROUP, f"s{n}", [(100 - n, "x")])
    names: list[str] = []
    token = None
    while True:
        page = store.describe_log_streams(GROUP, limit=3, token=token)
        names += [s["logStreamName"] for s in page["logStreams"]]
        token = page.get("nextToken")
        if token is None:
            break
    assert names == [f"s{n}" for n in range(7)]

    newest = store.describe_log_streams(GROUP, order_by="LastEventTime", descending=True, limit=2)
    assert [s["logStreamName"] for s in newest["logStreams"]] == ["s0", "s1"]
    rest = store.describe_log_streams(
        GROUP, order_by="LastEventTime", descending=True, token=newest["nextToken"]
    )
    assert [s["logStreamName"] for s in rest["logStreams"]] == [f"s{n}" for n in range(2, 7)]

    with pytest.raises(InvalidParameterError, match="LastEventTime"):
        store.describe_log_streams(GROUP, prefix="s", order_by="LastEventTime")
    with pytest.raises(InvalidParameterError, match="nextToken"):
        store.describe_log_streams(GROUP, token="not-a-token")
    with pytest.raises(InvalidParameterError, match="nextToken"):
        store.describe_log_streams(GROUP, token=newest["nextToken"])  # a token of another order


def test_groups_are_listed_paged_and_deleted(store: LogStore) -> None:
    for name in ("/aws/sagemaker/Endpoints/a", "/aws/sagemaker/Endpoints/b", GROUP, "mine"):
        store.create_log_group(name)
    with pytest.raises(LogResourceAlreadyExistsError):
        store.create_log_group("mine")

    page = store.describe_log_groups(prefix="/aws/sagemaker/", limit=2)
    assert [g["logGroupName"] for g in page["logGroups"]] == [
        "/aws/sagemaker/Endpoints/a",
        "/aws/sagemaker/Endpoints/b",
    ]
    rest = store.describe_log_groups(prefix="/aws/sagemaker/", limit=2, token=page["nextToken"])
    assert [g["logGroupName"] for g in rest["logGroups"]] == [GROUP]
    assert "nextToken" not in rest
    group = rest["logGroups"][0]
    assert group["arn"] == f"arn:aws:logs:us-east-1:123456789012:log-group:{GROUP}:*"
    assert group["logGroupArn"] == f"arn:aws:logs:us-east-1:123456789012:log-group:{GROUP}"
    found = store.describe_log_groups(pattern="endpoints")["logGroups"]
    assert [g["logGroupName"] for g in found] == [
        "/aws/sagemaker/Endpoints/a",
        "/aws/sagemaker/Endpoints/b",
    ]

    store.append("mine", "s", [(1, "old")])
    store.delete_log_group("mine")
    assert "mine" not in [g["logGroupName"] for g in store.describe_log_groups()["logGroups"]]
    with pytest.raises(LogResourceNotFoundError, match=GROUP_NOT_FOUND):
        store.get_log_events("mine", "s")
    with pytest.raises(LogResourceNotFoundError, match=GROUP_NOT_FOUND):
        store.delete_log_group("mine")
    store.append("mine", "s", [(2, "new")])  # a writer starts it afresh
    assert messages(store.get_log_events("mine", "s")) == ["new"]


def test_missing_things_and_the_put_rules(store: LogStore) -> None:
    with pytest.raises(LogResourceNotFoundError, match=GROUP_NOT_FOUND):
        store.describe_log_streams("nope")
    with pytest.raises(LogResourceNotFoundError, match=GROUP_NOT_FOUND):
        store.put_log_events("nope", "s", [(1, "x")])
    store.create_log_group("g")
    with pytest.raises(LogResourceNotFoundError, match=STREAM_NOT_FOUND):
        store.get_log_events("g", "s")
    with pytest.raises(LogResourceNotFoundError, match=STREAM_NOT_FOUND):
        store.put_log_events("g", "s", [(1, "x")])
    with pytest.raises(LogResourceNotFoundError, match=GROUP_NOT_FOUND):
        store.create_log_stream("nope", "s")
    store.create_log_stream("g", "s")
    with pytest.raises(LogResourceAlreadyExistsError):
        store.create_log_stream("g", "s")
    with pytest.raises(InvalidParameterError, match="chronological"):
        store.put_log_events("g", "s", [(2, "b"), (1, "a")])
    first = store.put_log_events("g", "s", [(1, "a"), (1, "b")])
    second = store.put_log_events("g", "s", [(3, "c")])
    assert first["nextSequenceToken"] != second["nextSequenceToken"]
    assert messages(store.get_log_events("g", "s")) == ["a", "b", "c"]


# Reading a stream


def test_reading_from_the_head_until_the_forward_token_repeats(store: LogStore) -> None:
    fill(store, "s", 25)
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = store.get_log_events(GROUP, "s", start_from_head=True, limit=10, token=token)
        seen += messages(page)
        pages += 1
        if page["nextForwardToken"] == token:
            assert page["events"] == []
            break
        token = page["nextForwardToken"]
    assert seen == [f"line {i}" for i in range(25)]
    assert pages == 4

    # New events show up behind the token the reader stopped on.
    fill(store, "s", 2, start=5000)
    page = store.get_log_events(GROUP, "s", token=token)
    assert [e["timestamp"] for e in page["events"]] == [5000, 5001]


def test_tail_and_backward_paging(store: LogStore) -> None:
    fill(store, "s", 25)
    tail = store.get_log_events(GROUP, "s", limit=10)
    assert messages(tail) == [f"line {i}" for i in range(15, 25)]
    assert tail["nextForwardToken"].startswith("f/")
    assert tail["nextBackwardToken"].startswith("b/")

    earlier = store.get_log_events(GROUP, "s", limit=10, token=tail["nextBackwardToken"])
    assert messages(earlier) == [f"line {i}" for i in range(5, 15)]
    earliest = store.get_log_events(GROUP, "s", limit=10, token=earlier["nextBackwardToken"])
    assert messages(earliest) == [f"line {i}" for i in range(5)]
    done = store.get_log_events(GROUP, "s", limit=10, token=earliest["nextBackwardToken"])
    assert done["events"] == []
    assert done["nextBackwardToken"] == earliest["nextBackwardToken"]

    # Forward from the tail: nothing new yet, and the same token comes back.
    idle = store.get_log_events(GROUP, "s", token=tail["nextForwardToken"])
    assert idle["events"] == []
    assert idle["nextForwardToken"] == tail["nextForwardToken"]

    with pytest.raises(InvalidParameterError, match="nextToken"):
        store.get_log_events(GROUP, "s", token="x/12")


def test_time_range_includes_start_and_excludes_end(store: LogStore) -> None:
    fill(store, "s", 10)  # timestamps 1000..1009
    page = store.get_log_events(GROUP, "s", start_time=1003, end_time=1006, start_from_head=True)
    assert [e["timestamp"] for e in page["events"]] == [1003, 1004, 1005]
    tail = store.get_log_events(GROUP, "s", start_time=1003, end_time=1008, limit=2)
    assert [e["timestamp"] for e in tail["events"]] == [1006, 1007]
    empty = store.get_log_events(GROUP, "s", start_time=5000, start_from_head=True)
    assert empty["events"] == []


def test_out_of_order_streams_are_still_filtered_by_time(store: LogStore) -> None:
    store.append(GROUP, "s", [(10, "a"), (30, "c")])
    store.append(GROUP, "s", [(20, "b"), (40, "d")])  # older than its predecessor
    page = store.get_log_events(GROUP, "s", start_time=15, end_time=35, start_from_head=True)
    assert messages(page) == ["c", "b"]  # append order, as stored
    assert messages(store.get_log_events(GROUP, "s", start_time=15, limit=1)) == ["d"]
    found = store.filter_log_events(GROUP, start=15)
    assert [e["message"] for e in found["events"]] == ["b", "c", "d"]


def test_a_page_stops_at_a_megabyte(store: LogStore) -> None:
    big = "x" * 200_000
    store.append(GROUP, "s", [(i, big) for i in range(12)])
    page = store.get_log_events(GROUP, "s", start_from_head=True)
    assert len(page["events"]) == 5
    rest = store.get_log_events(GROUP, "s", token=page["nextForwardToken"])
    assert len(rest["events"]) == 5
    tail = store.get_log_events(GROUP, "s")
    assert [e["timestamp"] for e in tail["events"]] == [7, 8, 9, 10, 11]


def test_a_long_stream_tail_is_read_without_reading_the_stream(store: LogStore) -> None:
    fill(store, "big", 120_000, start=0)
    started = time.perf_counter()
    for _ in range(50):
        tail = store.get_log_events(GROUP, "big", limit=100)
        since = store.get_log_events(GROUP, "big", start_time=119_950, start_from_head=True)
    elapsed = time.perf_counter() - started
    assert messages(tail)[-1] == "line 119999"
    assert len(tail["events"]) == 100
    assert len(since["events"]) == 50
    assert elapsed < 2.0, elapsed  # reading the whole stream 100 times would take far longer


# Filtering


def test_filter_patterns(store: LogStore) -> None:
    store.append(
        GROUP,
        "s",
        [
            (1, "INFO starting"),
            (2, "ERROR disk full"),
            (3, 'WARN "quoted" thing'),
            (4, "ERROR timeout while reading"),
            (5, "epoch 3 loss=0.25"),
        ],
    )

    def found(pattern: str | None) -> list[str]:
        return [e["message"] for e in store.filter_log_events(GROUP, pattern=pattern)["events"]]

    assert len(found(None)) == 5
    assert len(found("")) == 5
    assert found("ERROR") == ["ERROR disk full", "ERROR timeout while reading"]
    assert found("ERROR full") == ["ERROR disk full"]
    assert found('"disk full"') == ["ERROR disk full"]
    assert found('"full disk"') == []
    assert found('"\\"quoted\\""') == ['WARN "quoted" thing']
    assert found("?WARN ?INFO") == ["INFO starting", 'WARN "quoted" thing']
    assert found("ERROR -timeout") == ["ERROR disk full"]
    assert found("%loss=[0-9.]+%") == ["epoch 3 loss=0.25"]
    assert found("error") == []  # case-sensitive, as CloudWatch is
    for unsupported in ("{ $.level = 1 }", "[ip, user]"):
        with pytest.raises(InvalidParameterError, match="does not support"):
            found(unsupported)
    with pytest.raises(InvalidParameterError):
        found('"unterminated')


def test_filter_interleaves_streams_and_pages(store: LogStore) -> None:
    store.append(GROUP, "job/algo-1", [(t, f"one {t}") for t in range(0, 100, 2)])
    store.append(GROUP, "job/algo-2", [(t, f"two {t}") for t in range(1, 100, 2)])
    store.append(GROUP, "other/algo-1", [(t, f"other {t}") for t in range(100)])

    collected: list[dict[str, Any]] = []
    token = None
    while True:
        page = store.filter_log_events(GROUP, stream_prefix="job/", limit=7, token=token)
        collected += page["events"]
        assert len(page["events"]) <= 7
        token = page.get("nextToken")
        if token is None:
            break
    assert [e["timestamp"] for e in collected] == list(range(100))
    assert {e["logStreamName"] for e in collected} == {"job/algo-1", "job/algo-2"}
    assert len({e["eventId"] for e in collected}) == 100

    named = store.filter_log_events(GROUP, stream_names=["job/algo-2"], start=10, end=20)
    assert [e["timestamp"] for e in named["events"]] == [11, 13, 15, 17, 19]
    assert named["searchedLogStreams"] == [
        {"logStreamName": "job/algo-2", "searchedCompletely": True}
    ]
    with pytest.raises(InvalidParameterError, match="mutually exclusive"):
        store.filter_log_events(GROUP, stream_names=["a"], stream_prefix="b")
    with pytest.raises(InvalidParameterError, match="nextToken"):
        store.filter_log_events(GROUP, token="bm9wZQ==")


# Names and files


def test_names_never_leave_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    store = LogStore(root)
    hostile_groups = ["..", "../..", "/../../etc", "a/../../b", "." * 512, "#" * 512]
    hostile_streams = ["../../x", "/etc/passwd", "a\x00b", "é/\\/..", " ", "\n", "x" * 512]
    for group in hostile_groups:
        for stream in hostile_streams:
            store.append(group, stream, [(1, f"{group}|{stream}")])
    escaped = [p for p in tmp_path.rglob("*") if not p.resolve().is_relative_to(root.resolve())]
    assert escaped == []
    assert sorted(os.listdir(tmp_path)) == ["root"]
    groups = store.describe_log_groups()["logGroups"]
    assert sorted(g["logGroupName"] for g in groups) == sorted(hostile_groups)
    for group in hostile_groups:
        names = [s["logStreamName"] for s in store.describe_log_streams(group)["logStreams"]]
        assert sorted(names) == sorted(hostile_streams)
        for stream in hostile_streams:
            assert messages(store.get_log_events(group, stream)) == [f"{group}|{stream}"]


def test_messages_keep_newlines_and_unicode(store: LogStore) -> None:
    text = 'multi\nline "quoted" \\ tab\t émoji 🚀 \x00'
    store.append(GROUP, "s", [(1, text)])
    assert messages(LogStore(store.root).get_log_events(GROUP, "s")) == [text]


def test_a_torn_write_is_repaired_by_the_next_writer(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    fill(store, "s", 3)
    directory = next(tmp_path.glob("*/streams/*"))
    with (directory / "events.jsonl").open("ab") as data:
        data.write(b'[2000,2000,"indexed later"]\n')  # written, but its index entry was not
        data.write(b'[2001,2001,"torn')  # cut off mid-line
    with (directory / "events.idx").open("ab") as index:
        index.write(b"\x01\x02\x03")  # a partial index record

    # A reader sees only what is indexed, and does not change anything.
    assert len(LogStore(tmp_path).get_log_events(GROUP, "s")["events"]) == 3

    restarted = LogStore(tmp_path)
    restarted.append(GROUP, "s", [(3000, "after the crash")])
    assert messages(restarted.get_log_events(GROUP, "s")) == [
        "line 0",
        "line 1",
        "line 2",
        "indexed later",
        "after the crash",
    ]


def test_concurrent_writers_from_threads(store: LogStore) -> None:
    threads = 8
    batches = 200
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for batch in range(batches):
                events = [(batch, f"{worker}:{batch}:{n}") for n in range(3)]
                store.append(GROUP, "shared", events)
                store.append(GROUP, f"own-{worker % 3}", events[:1])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=write, args=(w,)) for w in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert errors == []

    seen: list[str] = []
    token = None
    while True:
        page = store.get_log_events(GROUP, "shared", start_from_head=True, token=token)
        if not page["events"]:
            break
        seen += messages(page)
        token = page["nextForwardToken"]
    assert len(seen) == threads * batches * 3
    for worker in range(threads):
        mine = [m for m in seen if m.startswith(f"{worker}:")]
        assert mine == [f"{worker}:{b}:{n}" for b in range(batches) for n in range(3)]
    # Each batch lands in one piece.
    for start in range(0, len(seen), 3):
        assert len({m.rsplit(":", 1)[0] for m in seen[start : start + 3]}) == 1
    own = sum(len(store.get_log_events(GROUP, f"own-{n}")["events"]) for n in range(3))
    assert own == threads * batches


# Process output


def test_line_sink_buffers_partial_lines(store: LogStore) -> None:
    ticks = iter(range(100, 200))
    sink = LineSink(store, GROUP, "job/algo-1", clock=lambda: next(ticks))
    sink.write("first li")
    assert store.get_log_events(GROUP, "job/algo-1")["events"] == []
    sink.write("ne\nsecond\r\n\nthird")
    sink.write(" line\npartial")
    page = store.get_log_events(GROUP, "job/algo-1")
    assert messages(page) == ["first line", "second", "third line"]
    assert [e["timestamp"] for e in page["events"]] == [101, 101, 102]
    sink.close()
    assert messages(store.get_log_events(GROUP, "job/algo-1"))[-1] == "partial"
    with pytest.raises(ValueError, match="closed"):
        sink.write("more")


def test_line_sink_flushes_and_splits_long_lines(store: LogStore) -> None:
    with store.stream_writer(GROUP, "s") as sink:
        assert store.describe_log_streams(GROUP)["logStreams"][0]["logStreamName"] == "s"
        sink.write("no newline yet")
        sink.flush()
        assert messages(store.get_log_events(GROUP, "s")) == ["no newline yet"]
        sink.write("y" * 150_000)
    lengths = [len(m) for m in messages(store.get_log_events(GROUP, "s"))[1:]]
    assert lengths == [65_536, 65_536, 18_928]
    before = time.time() * 1000
    LineSink(store, GROUP, "t").write("now\n")
    stamp = store.get_log_events(GROUP, "t")["events"][0]["timestamp"]
    assert before - 1 <= stamp <= time.time() * 1000 + 1


# `sabio logs --home`


def cli_args(home: Path, name: str, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    logs_cli.add_arguments(parser)
    return parser.parse_args([name, "--home", str(home), *extra])


def test_cli_prints_a_jobs_streams_interleaved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LogStore(store_root(tmp_path))
    store.append(GROUP, "job/algo-1-1", [(1_700_000_000_000, "one"), (1_700_000_000_002, "three")])
    store.append(GROUP, "job/algo-2-1", [(1_700_000_000_001, "two")])
    store.append(GROUP, "jobber/algo-1-1", [(0, "not mine")])

    assert logs_cli.run(cli_args(tmp_path, "job")) == 0
    assert capsys.readouterr().out.splitlines() == [
        "2023-11-14T22:13:20.000Z job/algo-1-1 one",
        "2023-11-14T22:13:20.001Z job/algo-2-1 two",
        "2023-11-14T22:13:20.002Z job/algo-1-1 three",
    ]
    assert logs_cli.run(cli_args(tmp_path, GROUP, "--raw", "--stream-prefix", "jobber/")) == 0
    assert capsys.readouterr().out == "not mine\n"
    assert logs_cli.run(cli_args(tmp_path, "nojob")) == 1
    assert "no log streams" in capsys.readouterr().err
    assert logs_cli.run(cli_args(tmp_path, "/no/group")) == 1
    assert "does not exist" in capsys.readouterr().err


def test_cli_follows_until_interrupted(tmp_path: Path) -> None:
    store = LogStore(store_root(tmp_path))
    script = (
        "import argparse, sys\n"
        "from sabio.cli import logs\n"
        "parser = argparse.ArgumentParser()\n"
        "logs.add_arguments(parser)\n"
        "sys.exit(logs.run(parser.parse_args(sys.argv[1:])))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, "job", "--follow", "--raw", "--home", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or []])
    reader.start()
    try:
        store.append(GROUP, "job/algo-1-1", [(1, "before")])  # the job starts after we follow
        assert lines.get(timeout=20) == "before\n"
        with store.stream_writer(GROUP, "job/algo-2-1") as sink:
            sink.write("from a second instance\n")
        store.append(GROUP, "job/algo-1-1", [(2, "after")])
        assert {lines.get(timeout=20), lines.get(timeout=20)} == {
            "from a second instance\n",
            "after\n",
        }
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
        reader.join()
        err = process.stderr.read() if process.stderr else ""
        for pipe in (process.stdout, process.stderr):
            if pipe:
                pipe.close()
    assert process.returncode == 0, err
    assert lines.empty()
