"""CloudWatch Logs on local disk: the log groups and streams that jobs and endpoints write and
that `fit(logs=True)`, the Logs API and `sabio logs` read.

Layout under `root` (one directory per group, one per stream, both named by a readable slug plus
a hash of the name, so no user-chosen name ever becomes a path)::

    <group>/group.json                   {"name", "creationTime"}
    <group>/streams/<stream>/stream.json {"name", "creationTime"}
    <group>/streams/<stream>/events.jsonl one line per event: [timestamp, ingestionTime, message]
    <group>/streams/<stream>/events.idx   28 bytes per event: offset, length, timestamp, ingestion
    <group>/streams/<stream>/unordered    present once an event was older than its predecessor

`events.jsonl` is the record; `events.idx` is derived from it and lets a reader jump to any event
number (tails, tokens) and binary-search timestamps without reading the stream. Data is written
before its index entry, so readers in any thread or process see a consistent prefix without locks.
Appends reach the kernel before `append` returns: they survive a crash of the server, not of the
machine. One process (the server) writes a store; any number may read it.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from sabio.errors import InvalidParameterError, LogResourceNotFoundError, SabioError
from sabio.telemetry.log_files import (
    _RECORD,
    EVENT_OVERHEAD,
    MAX_PAGE_BYTES,
    _decode_cursor,
    _decode_filter_cursor,
    _dir_name,
    _encode_cursor,
    _encode_line,
    _event_id,
    _parse_event_token,
    _read_entry,
    _Reader,
    _rename_into_place,
    _repair,
    _scan_dirs,
    _Stream,
    _stream_dir,
    _stream_events,
    _write_all,
    _write_meta,
    now_ms,
)
from sabio.telemetry.log_filter import FilterPattern

GROUP_NOT_FOUND = "The specified log group does not exist."
STREAM_NOT_FOUND = "The specified log stream does not exist."

MAX_EVENTS = 10_000
MAX_LINE_CHARS = 65_536
"""A `LineSink` cuts longer lines into several events (CloudWatch caps an event at 256 KB)."""


class LogResourceAlreadyExistsError(SabioError):
    code = "ResourceAlreadyExistsException"
    status = 400


def store_root(home: Path) -> Path:
    """Where a Sabio home keeps its log groups, so the server and `sabio logs --home` agree."""
    return home / "logs" / "cloudwatch"


class LogStore:
    """Log groups and streams under `root`, with CloudWatch Logs' read semantics."""

    def __init__(
        self, root: Path, *, region: str = "us-east-1", account_id: str = "123456789012"
    ) -> None:
        self.root = root
        self.region = region
        self.account_id = account_id
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._stream_locks: dict[Path, threading.Lock] = {}
        self._repaired: set[Path] = set()
        self._meta: dict[tuple[str, int], tuple[str, int]] = {}

    # Writing

    def append(self, group: str, stream: str, events: Sequence[tuple[int, str]]) -> None:
        """Append events in the given order, creating the group and stream on first use."""
        self._append(group, stream, events, create=True)

    def stream_writer(self, group: str, stream: str) -> LineSink:
        """A file-like sink for a process's output; the stream exists from this call on."""
        return LineSink(self, group, stream)

    def create_log_group(self, group: str) -> None:
        with self._lock:
            if self._group_dir(group).is_dir():
                raise LogResourceAlreadyExistsError("The specified log group already exists")
            self._create_group(group)

    def create_log_stream(self, group: str, stream: str) -> None:
        gdir = self._existing_group(group)
        with self._lock:
            if _stream_dir(gdir, stream).is_dir():
                raise LogResourceAlreadyExistsError("The specified log stream already exists")
            self._create_stream(gdir, stream)

    def put_log_events(
        self, group: str, stream: str, events: Sequence[tuple[int, str]]
    ) -> dict[str, Any]:
        """PutLogEvents: the group and stream must exist and the batch must be in time order."""
        if any(later[0] < earlier[0] for earlier, later in itertools.pairwise(events)):
            raise InvalidParameterError(
                "Log events in a single PutLogEvents request must be in chronological order."
            )
        count = self._append(group, stream, events, create=False)
        return {"nextSequenceToken": f"{count:056d}"}

    def delete_log_group(self, group: str) -> None:
        gdir = self._existing_group(group)
        trash = self.root / f".trash-{uuid.uuid4().hex}"
        with self._lock:
            try:
                os.rename(gdir, trash)
            except FileNotFoundError:
                raise LogResourceNotFoundError(GROUP_NOT_FOUND) from None
            prefix = str(gdir) + os.sep
            self._repaired = {p for p in self._repaired if not str(p).startswith(prefix)}
            self._meta = {k: v for k, v in self._meta.items() if not k[0].startswith(prefix)}
        shutil.rmtree(trash, ignore_errors=True)

    # Reading

    def describe_log_groups(
        self,
        prefix: str | None = None,
        limit: int = 50,
        token: str | None = None,
        *,
        pattern: str | None = None,
        names: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Groups by name; `pattern` is a case-insensitive substring, `names` an exact list."""
        after = _decode_cursor(token, str)
        wanted = set(names) if names is not None else None
        groups = []
        for name, creation in self._groups():
            if prefix is not None and not name.startswith(prefix):
                continue
            if pattern and pattern.lower() not in name.lower():
                continue
            if wanted is not None and name not in wanted:
                continue
            if after is not None and [name] <= after:
                continue
            groups.append((name, creation))
        groups.sort()
        page = groups[:limit]
        response: dict[str, Any] = {"logGroups": [self._group_view(n, c) for n, c in page]}
        if len(groups) > limit:
            response["nextToken"] = _encode_cursor([page[-1][0]])
        return response

    def describe_log_streams(
        self,
        group: str,
        prefix: str | None = None,
        order_by: str = "LogStreamName",
        descending: bool = False,
        limit: int = 50,
        token: str | None = None,
    ) -> dict[str, Any]:
        gdir = self._existing_group(group)
        if order_by not in ("LogStreamName", "LastEventTime"):
            raise InvalidParameterError(f"Unknown orderBy {order_by}.")
        if prefix is not None and order_by == "LastEventTime":
            raise InvalidParameterError("Cannot order by LastEventTime with a logStreamNamePrefix.")
        by_time = order_by == "LastEventTime"
        after = _decode_cursor(token, int, str) if by_time else _decode_cursor(token, str)
        keyed: list[tuple[list[Any], _Stream]] = []
        for stream in self._streams(gdir):
            if prefix is not None and not stream.name.startswith(prefix):
                continue
            key: list[Any] = (
                [self._last_event_time(stream), stream.name] if by_time else [stream.name]
            )
            if after is not None and (key >= after if descending else key <= after):
                continue
            keyed.append((key, stream))
        keyed.sort(key=lambda item: item[0], reverse=descending)
        page = keyed[:limit]
        response: dict[str, Any] = {
            "logStreams": [self._stream_view(group, stream) for _, stream in page]
        }
        if len(keyed) > limit:
            response["nextToken"] = _encode_cursor(page[-1][0])
        return response

    def get_log_events(
        self,
        group: str,
        stream: str,
        start_time: int | None = None,
        end_time: int | None = None,
        start_from_head: bool = False,
        limit: int = MAX_EVENTS,
        token: str | None = None,
    ) -> dict[str, Any]:
        """One page of a stream, CloudWatch's way.

        A `f/N` token reads forward from event N, a `b/N` token backward from before event N;
        without one, `start_from_head` picks the first or the last `limit` events. A page with
        no events hands back the token it was given, which is how readers know they are done.
        """
        info = self._existing_stream(group, stream)
        forward, position = _parse_event_token(token, start_from_head)
        limit = max(1, min(limit, MAX_EVENTS))
        with _Reader(info) as reader:
            low, high, keep = reader.time_range(start_time, end_time)
            if forward:
                begin = low if position is None else max(min(position, reader.count), low)
                picked = reader.scan_forward(begin, high, limit, keep)
                edge = begin if position is None else min(position, reader.count)
            else:
                end = high if position is None else min(position, high)
                picked = reader.scan_backward(end, low, limit, keep)
                edge = end if position is None else min(position, reader.count)
            loaded = reader.load(picked)
        if picked:
            next_forward, next_backward = f"f/{picked[-1].number + 1}", f"b/{picked[0].number}"
        else:
            next_forward, next_backward = f"f/{edge}", f"b/{edge}"
            if token is not None:
                if forward:
                    next_forward = token
                else:
                    next_backward = token
        return {
            "events": [
                {"timestamp": e.timestamp, "message": message, "ingestionTime": e.ingestion}
                for e, message in loaded
            ],
            "nextForwardToken": next_forward,
            "nextBackwardToken": next_backward,
        }

    def filter_log_events(
        self,
        group: str,
        stream_names: Sequence[str] | None = None,
        stream_prefix: str | None = None,
        pattern: str | None = None,
        start: int | None = None,
        end: int | None = None,
        limit: int = MAX_EVENTS,
        token: str | None = None,
    ) -> dict[str, Any]:
        """Matching events of many streams, interleaved by timestamp (see `FilterPattern`)."""
        gdir = self._existing_group(group)
        if stream_names is not None and stream_prefix is not None:
            raise InvalidParameterError(
                "logStreamNames and logStreamNamePrefix are mutually exclusive."
            )
        matcher = FilterPattern(pattern)
        limit = max(1, min(limit, MAX_EVENTS))
        cursor = _decode_filter_cursor(token)
        wanted = set(stream_names) if stream_names is not None else None
        streams = [
            s
            for s in self._streams(gdir)
            if (wanted is None or s.name in wanted)
            and (stream_prefix is None or s.name.startswith(stream_prefix))
        ]
        streams.sort(key=lambda s: s.name)
        events: list[dict[str, Any]] = []
        budget = MAX_PAGE_BYTES
        last: tuple[int, str, int] | None = None
        stopped = False
        merged = heapq.merge(*(_stream_events(s, cursor, start, end) for s in streams))
        for timestamp, name, index, ingestion, message in merged:
            if not matcher.matches(message):
                continue
            cost = len(message.encode("utf-8", "surrogatepass")) + EVENT_OVERHEAD
            if len(events) >= limit or (events and cost > budget):
                stopped = True
                break
            budget -= cost
            last = (timestamp, name, index)
            events.append(
                {
                    "logStreamName": name,
                    "timestamp": timestamp,
                    "message": message,
                    "ingestionTime": ingestion,
                    "eventId": _event_id(timestamp, name, index),
                }
            )
        response: dict[str, Any] = {
            "events": events,
            "searchedLogStreams": [
                {"logStreamName": s.name, "searchedCompletely": not stopped} for s in streams
            ],
        }
        if stopped and last is not None:
            response["nextToken"] = _encode_cursor(["filter", *last])
        return response

    # Groups and streams on disk

    def _group_dir(self, group: str) -> Path:
        return self.root / _dir_name(group)

    def _existing_group(self, group: str) -> Path:
        gdir = self._group_dir(group)
        if not (gdir / "group.json").is_file():
            raise LogResourceNotFoundError(GROUP_NOT_FOUND)
        return gdir

    def _existing_stream(self, group: str, stream: str) -> _Stream:
        sdir = _stream_dir(self._existing_group(group), stream)
        meta = self._read_meta(sdir / "stream.json")
        if meta is None:
            raise LogResourceNotFoundError(STREAM_NOT_FOUND)
        return _Stream(meta[0], meta[1], sdir)

    def _create_group(self, group: str) -> Path:
        """Build the group in a temporary directory and rename it into place (holding _lock)."""
        gdir = self._group_dir(group)
        tmp = self.root / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        (tmp / "streams").mkdir()
        _write_meta(tmp / "group.json", group)
        _rename_into_place(tmp, gdir)
        return gdir

    def _create_stream(self, gdir: Path, stream: str) -> Path:
        sdir = _stream_dir(gdir, stream)
        tmp = gdir / "streams" / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        (tmp / "events.jsonl").touch()
        (tmp / "events.idx").touch()
        _write_meta(tmp / "stream.json", stream)
        _rename_into_place(tmp, sdir)
        return sdir

    def _ensure_stream(self, group: str, stream: str, create: bool) -> Path:
        gdir = self._group_dir(group)
        sdir = _stream_dir(gdir, stream)
        if (sdir / "stream.json").is_file():
            return sdir
        if not create:
            self._existing_group(group)
            raise LogResourceNotFoundError(STREAM_NOT_FOUND)
        with self._lock:
            if not (gdir / "group.json").is_file():
                self._create_group(group)
            if not (sdir / "stream.json").is_file():
                self._create_stream(gdir, stream)
        return sdir

    def _stream_lock(self, sdir: Path) -> threading.Lock:
        with self._lock:
            lock = self._stream_locks.get(sdir)
            if lock is None:
                lock = self._stream_locks[sdir] = threading.Lock()
            return lock

    def _append(
        self, group: str, stream: str, events: Sequence[tuple[int, str]], *, create: bool
    ) -> int:
        """Append under the stream's lock; returns the stream's event count afterwards."""
        sdir = self._ensure_stream(group, stream, create)
        with self._stream_lock(sdir):
            for attempt in range(2):
                try:
                    return self._write(sdir, events)
                except FileNotFoundError:
                    # The group was deleted under us: start it again, as a fresh writer would.
                    if attempt:
                        raise
                    sdir = self._ensure_stream(group, stream, create)
        raise AssertionError("unreachable")

    def _write(self, sdir: Path, events: Sequence[tuple[int, str]]) -> int:
        info = _Stream("", 0, sdir)
        if sdir not in self._repaired:
            _repair(info)
            with self._lock:
                self._repaired.add(sdir)
        data_fd = os.open(info.data, os.O_WRONLY | os.O_APPEND)
        try:
            index_fd = os.open(info.index, os.O_RDWR | os.O_APPEND)
            try:
                offset = os.fstat(data_fd).st_size
                count = os.fstat(index_fd).st_size // _RECORD.size
                if not events:
                    return count
                last = _read_entry(index_fd, count - 1).timestamp if count else None
                ingestion = now_ms()
                lines: list[bytes] = []
                records: list[bytes] = []
                unordered = False
                for timestamp, message in events:
                    line = _encode_line(timestamp, ingestion, message)
                    lines.append(line)
                    records.append(_RECORD.pack(offset, len(line), timestamp, ingestion))
                    offset += len(line)
                    if last is not None and timestamp < last:
                        unordered = True
                    last = timestamp
                if unordered:
                    info.unordered.touch()
                try:
                    _write_all(data_fd, b"".join(lines))
                    _write_all(index_fd, b"".join(records))
                except OSError:
                    with self._lock:
                        self._repaired.discard(sdir)
                    raise
                return count + len(records)
            finally:
                os.close(index_fd)
        finally:
            os.close(data_fd)

    def _groups(self) -> list[tuple[str, int]]:
        found = []
        for entry in _scan_dirs(self.root):
            meta = self._cached_meta(entry, "group.json")
            if meta is not None:
                found.append(meta)
        return found

    def _streams(self, gdir: Path) -> list[_Stream]:
        found = []
        for entry in _scan_dirs(gdir / "streams"):
            meta = self._cached_meta(entry, "stream.json")
            if meta is not None:
                found.append(_Stream(meta[0], meta[1], Path(entry.path)))
        return found

    def _cached_meta(self, entry: os.DirEntry[str], file: str) -> tuple[str, int] | None:
        key = (entry.path + os.sep, entry.inode())
        meta = self._meta.get(key)
        if meta is None:
            meta = self._read_meta(Path(entry.path) / file)
            if meta is not None:
                with self._lock:
                    self._meta[key] = meta
        return meta

    @staticmethod
    def _read_meta(path: Path) -> tuple[str, int] | None:
        try:
            data = json.loads(path.read_bytes())
            return str(data["name"]), int(data["creationTime"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _group_view(self, name: str, creation: int) -> dict[str, Any]:
        arn = f"arn:aws:logs:{self.region}:{self.account_id}:log-group:{name}"
        return {
            "logGroupName": name,
            "creationTime": creation,
            "metricFilterCount": 0,
            "arn": f"{arn}:*",
            "logGroupArn": arn,
            "storedBytes": 0,
            "logGroupClass": "STANDARD",
        }

    @staticmethod
    def _last_event_time(stream: _Stream) -> int:
        try:
            with _Reader(stream) as reader:
                return reader.entry(reader.count - 1).timestamp if reader.count else 0
        except FileNotFoundError:
            return 0

    def _stream_view(self, group: str, stream: _Stream) -> dict[str, Any]:
        view: dict[str, Any] = {
            "logStreamName": stream.name,
            "creationTime": stream.creation,
            "arn": (
                f"arn:aws:logs:{self.region}:{self.account_id}:log-group:{group}"
                f":log-stream:{stream.name}"
            ),
            "storedBytes": 0,
        }
        try:
            with _Reader(stream) as reader:
                if reader.count:
                    first, last = reader.entry(0), reader.entry(reader.count - 1)
                    view["firstEventTimestamp"] = first.timestamp
                    view["lastEventTimestamp"] = last.timestamp
                    view["lastIngestionTime"] = last.ingestion
        except FileNotFoundError:
            pass
        return view


class LineSink:
    """Turns a process's output into log events: one per complete line, stamped on arrival.

    Empty lines are dropped (CloudWatch has no empty events) and a trailing `\\r` is removed.
    """

    def __init__(
        self, store: LogStore, group: str, stream: str, clock: Callable[[], int] = now_ms
    ) -> None:
        self.store = store
        self.group = group
        self.stream = stream
        self._clock = clock
        self._partial = ""
        self._closed = False
        self._lock = threading.Lock()
        store.append(group, stream, ())

    def write(self, text: str) -> int:
        with self._lock:
            if self._closed:
                raise ValueError("write to a closed LineSink")
            buffered = self._partial + text
            *complete, self._partial = buffered.split("\n")
            while len(self._partial) > MAX_LINE_CHARS:
                complete.append(self._partial[:MAX_LINE_CHARS])
                self._partial = self._partial[MAX_LINE_CHARS:]
            self._emit(complete)
        return len(text)

    def flush(self) -> None:
        """Append any trailing partial line as an event of its own."""
        with self._lock:
            partial, self._partial = self._partial, ""
            self._emit([partial])

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._closed = True

    def __enter__(self) -> LineSink:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _emit(self, lines: list[str]) -> None:
        events = []
        stamp = self._clock()
        for line in lines:
            if line.endswith("\r"):
                line = line[:-1]
            for start in range(0, len(line), MAX_LINE_CHARS):
                events.append((stamp, line[start : start + MAX_LINE_CHARS]))
        if events:
            self.store.append(self.group, self.stream, events)
