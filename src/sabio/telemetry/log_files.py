"""The on-disk format of log streams: an append-only JSON Lines record plus a fixed-size index
that lets readers jump to any event and search by time without locks (see `telemetry.logs`)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import shutil
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sabio.errors import InvalidParameterError

MAX_PAGE_BYTES = 1_048_576
"""CloudWatch returns at most 1 MB of events per page (message bytes + 26 per event)."""
EVENT_OVERHEAD = 26

_RECORD = struct.Struct("<QIqq")
_CHUNK = 4096
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Entry(NamedTuple):
    number: int
    offset: int
    length: int
    timestamp: int
    ingestion: int


@dataclass(frozen=True)
class _Stream:
    name: str
    creation: int
    directory: Path

    @property
    def data(self) -> Path:
        return self.directory / "events.jsonl"

    @property
    def index(self) -> Path:
        return self.directory / "events.idx"

    @property
    def unordered(self) -> Path:
        return self.directory / "unordered"


class _Reader:
    """A consistent prefix of one stream, read without locks."""

    def __init__(self, stream: _Stream) -> None:
        self.stream = stream
        self._index = os.open(stream.index, os.O_RDONLY)
        try:
            self._data = os.open(stream.data, os.O_RDONLY)
        except OSError:
            os.close(self._index)
            raise
        # Count first, then look for the marker: a writer creates the marker before it writes
        # the out-of-order entry, so any entry counted here is covered by what we see next.
        self.count = os.fstat(self._index).st_size // _RECORD.size
        self.ordered = not stream.unordered.exists()

    def close(self) -> None:
        os.close(self._index)
        os.close(self._data)

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def entry(self, index: int) -> _Entry:
        return _read_entry(self._index, index)

    def entries(self, start: int, stop: int) -> list[_Entry]:
        if stop <= start:
            return []
        raw = _pread_exact(self._index, (stop - start) * _RECORD.size, start * _RECORD.size)
        return [_Entry(start + n, *fields) for n, fields in enumerate(_RECORD.iter_unpack(raw))]

    def lower_bound(self, timestamp: int) -> int:
        """The first event at or after `timestamp`; only meaningful for ordered streams."""
        low, high = 0, self.count
        while low < high:
            middle = (low + high) // 2
            if self.entry(middle).timestamp < timestamp:
                low = middle + 1
            else:
                high = middle
        return low

    def time_range(
        self, start: int | None, end: int | None
    ) -> tuple[int, int, Callable[[int], bool] | None]:
        """Event numbers `[low, high)` to look at, plus a per-event test when that is not exact.

        CloudWatch includes `start` and excludes `end`.
        """
        if start is None and end is None:
            return 0, self.count, None
        if self.ordered:
            low = 0 if start is None else self.lower_bound(start)
            high = self.count if end is None else self.lower_bound(end)
            return low, max(low, high), None
        first = start if start is not None else -(2**63)
        last = end if end is not None else 2**63
        return 0, self.count, lambda timestamp: first <= timestamp < last

    def scan_forward(
        self, begin: int, stop: int, limit: int, keep: Callable[[int], bool] | None
    ) -> list[_Entry]:
        picked: list[_Entry] = []
        budget = MAX_PAGE_BYTES
        position = begin
        while position < stop and len(picked) < limit:
            size = limit - len(picked) if keep is None else _CHUNK
            chunk = self.entries(position, min(stop, position + size))
            position += len(chunk)
            for entry in chunk:
                if keep is not None and not keep(entry.timestamp):
                    continue
                cost = entry.length + EVENT_OVERHEAD
                if picked and cost > budget:
                    return picked
                budget -= cost
                picked.append(entry)
                if len(picked) == limit:
                    break
        return picked

    def scan_backward(
        self, end: int, stop: int, limit: int, keep: Callable[[int], bool] | None
    ) -> list[_Entry]:
        """The last `limit` wanted entries before `end` (not before `stop`), oldest first."""
        picked: list[_Entry] = []
        budget = MAX_PAGE_BYTES
        position = end
        while position > stop and len(picked) < limit:
            size = limit - len(picked) if keep is None else _CHUNK
            chunk = self.entries(max(stop, position - size), position)
            position -= len(chunk)
            for entry in reversed(chunk):
                if keep is not None and not keep(entry.timestamp):
                    continue
                cost = entry.length + EVENT_OVERHEAD
                if picked and cost > budget:
                    picked.reverse()
                    return picked
                budget -= cost
                picked.append(entry)
                if len(picked) == limit:
                    break
        picked.reverse()
        return picked

    def load(self, entries: Sequence[_Entry]) -> list[tuple[_Entry, str]]:
        """The messages of `entries`, reading each contiguous run of them with one call."""
        loaded: list[tuple[_Entry, str]] = []
        run: list[_Entry] = []
        for entry in entries:
            if run and entry.offset != run[-1].offset + run[-1].length:
                loaded.extend(self._load_run(run))
                run = []
            run.append(entry)
        if run:
            loaded.extend(self._load_run(run))
        return loaded

    def _load_run(self, run: list[_Entry]) -> list[tuple[_Entry, str]]:
        start = run[0].offset
        raw = _pread_exact(self._data, run[-1].offset + run[-1].length - start, start)
        return [
            (
                entry,
                _decode_message(raw[entry.offset - start : entry.offset - start + entry.length]),
            )
            for entry in run
        ]


def _stream_events(
    stream: _Stream, cursor: tuple[int, str, int] | None, start: int | None, end: int | None
) -> Iterator[tuple[int, str, int, int, str]]:
    """`(timestamp, stream, index, ingestion, message)` in timestamp order, within
    `[start, end)` and after `cursor`; unordered streams are sorted first.

    Files are open only while a chunk is read, so searching a thousand streams at once does
    not hold two thousand descriptors."""
    name = stream.name
    try:
        with _Reader(stream) as reader:
            low, high, keep = reader.time_range(start, end)
            ordered = reader.ordered
            if cursor is not None and ordered:
                low = max(low, reader.lower_bound(cursor[0]))
            wanted: list[_Entry] = []
            if not ordered:
                wanted = [
                    e
                    for e in reader.entries(low, high)
                    if (keep is None or keep(e.timestamp))
                    and (cursor is None or (e.timestamp, name, e.number) > cursor)
                ]
                wanted.sort(key=lambda e: (e.timestamp, e.number))
        position = low
        while (position < high) if ordered else (position < len(wanted)):
            with _Reader(stream) as reader:
                if ordered:
                    chunk = reader.entries(position, min(high, position + _CHUNK))
                else:
                    chunk = wanted[position : position + _CHUNK]
                loaded = reader.load(chunk)
            position += len(chunk)
            for entry, message in loaded:
                key = (entry.timestamp, name, entry.number)
                if cursor is None or key > cursor:
                    yield (*key, entry.ingestion, message)
    except FileNotFoundError:
        return  # the group was deleted while we searched it


# Files


def _dir_name(name: str) -> str:
    """A readable, collision-free directory name for any group or stream name."""
    slug = _SLUG.sub("_", name).strip("._-")[:40]
    digest = hashlib.sha256(name.encode()).hexdigest()[:32]
    return f"{slug}-{digest}" if slug else digest


def _stream_dir(gdir: Path, stream: str) -> Path:
    return gdir / "streams" / _dir_name(stream)


def _scan_dirs(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return [e for e in entries if not e.name.startswith(".") and e.is_dir()]
    except FileNotFoundError:
        return []


def _write_meta(path: Path, name: str) -> None:
    path.write_text(json.dumps({"name": name, "creationTime": now_ms()}), encoding="utf-8")


def _rename_into_place(tmp: Path, target: Path) -> None:
    try:
        os.rename(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not target.is_dir():
            raise


def _encode_line(timestamp: int, ingestion: int, message: str) -> bytes:
    text = json.dumps([timestamp, ingestion, message], ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "surrogatepass") + b"\n"


def _decode_message(line: bytes) -> str:
    try:
        return str(json.loads(line)[2])
    except (ValueError, IndexError, TypeError, KeyError):
        return line.decode("utf-8", "replace").rstrip("\n")


def _read_entry(fd: int, index: int) -> _Entry:
    raw = _pread_exact(fd, _RECORD.size, index * _RECORD.size)
    return _Entry(index, *_RECORD.unpack(raw))


def _pread_exact(fd: int, size: int, offset: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = os.pread(fd, size, offset)
        if not chunk:
            raise OSError(f"log file ended early at byte {offset}")
        chunks.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _repair(stream: _Stream) -> None:
    """Make the index match the data after a crash: drop a torn last line and index entries
    past the data, and index complete lines that have no entry yet."""
    data_size = stream.data.stat().st_size
    stream.index.touch()
    with stream.index.open("r+b") as index:
        count = os.fstat(index.fileno()).st_size // _RECORD.size
        low, high = 0, count
        while low < high:  # the number of entries whose line lies wholly within the data
            middle = (low + high) // 2
            entry = _read_entry(index.fileno(), middle)
            if entry.offset + entry.length <= data_size:
                low = middle + 1
            else:
                high = middle
        count = low
        index.truncate(count * _RECORD.size)
        last = _read_entry(index.fileno(), count - 1) if count else None
        indexed = last.offset + last.length if last else 0
        with stream.data.open("r+b") as data:
            data.seek(indexed)
            tail = data.read()
            records = []
            offset = indexed
            previous = last.timestamp if last else None
            unordered = False
            for line in tail.splitlines(keepends=True):
                if not line.endswith(b"\n"):
                    break
                try:
                    timestamp, ingestion, _ = json.loads(line)
                    record = _RECORD.pack(offset, len(line), int(timestamp), int(ingestion))
                except (ValueError, TypeError, struct.error):
                    break
                records.append(record)
                offset += len(line)
                if previous is not None and timestamp < previous:
                    unordered = True
                previous = timestamp
            data.truncate(offset)
        if unordered:
            stream.unordered.touch()
        index.seek(count * _RECORD.size)
        index.write(b"".join(records))


# Tokens


def _parse_event_token(token: str | None, start_from_head: bool) -> tuple[bool, int | None]:
    if token is None:
        return start_from_head, None
    direction, _, number = token.partition("/")
    if direction not in ("f", "b") or not number.isdigit():
        raise InvalidParameterError("The specified nextToken is invalid.")
    return direction == "f", int(number)


def _encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def _decode_cursor(token: str | None, *kinds: type) -> list[Any] | None:
    """The sort key a page ended on; `kinds` are the types its members must have."""
    if token is None:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        key = None
    if (
        not isinstance(key, list)
        or len(key) != len(kinds)
        or not all(isinstance(v, k) for v, k in zip(key, kinds, strict=True))
    ):
        raise InvalidParameterError("The specified nextToken is invalid.")
    return key


def _decode_filter_cursor(token: str | None) -> tuple[int, str, int] | None:
    key = _decode_cursor(token, str, int, str, int)
    if key is None:
        return None
    if key[0] != "filter":
        raise InvalidParameterError("The specified nextToken is invalid.")
    return key[1], key[2], key[3]


def _event_id(timestamp: int, stream: str, index: int) -> str:
    """56 digits, as CloudWatch's are: timestamp, a number for the stream, the event number."""
    stream_number = int(hashlib.sha256(stream.encode()).hexdigest()[:13], 16)
    return f"{timestamp % 10**20:020d}{stream_number:016d}{index:020d}"
