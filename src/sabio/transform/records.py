"""Splitting input objects into records and records into mini-batches, incrementally.

Everything here reads from a blocking binary stream and keeps at most one mini-batch (plus one
partial record) in memory, whatever the size of the object. No I/O other than `stream.read`.

- `SplitType` None: the whole object is one request (`whole_object`).
- `SplitType` Line: records are lines; empty lines are skipped, `\\r\\n` endings accepted.
  MultiRecord without filters cuts the byte stream at the last newline that fits the payload
  limit (`line_chunks`), so no per-line Python work is done on the hot path.
- `SplitType` RecordIO (MXNet framing, multi-part records joined) and TFRecord (length, CRC,
  data, CRC; CRCs are not verified). SingleRecord sends a record's data without its framing;
  MultiRecord sends the framed records as they are in the file, as SageMaker does.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

NONE = "None"
LINE = "Line"
RECORDIO = "RecordIO"
TFRECORD = "TFRecord"
SINGLE_RECORD = "SingleRecord"
MULTI_RECORD = "MultiRecord"

MB = 1024 * 1024
# A record (or a whole object with SplitType None) is never bigger than what a worker accepts.
HARD_LIMIT = 100 * MB

RECORDIO_MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", RECORDIO_MAGIC)
_LENGTH_MASK = (1 << 29) - 1


class RecordError(Exception):
    """A record that cannot be read, sent or processed.

    `location` is the record's line (SplitType Line) or record number in the file when known;
    `index` its position in a mini-batch when the error comes from processing a response."""

    def __init__(self, message: str, *, location: int | None = None, index: int | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.index = index


@dataclass(slots=True)
class Record:
    payload: bytes  # what a request carries: filtered, framing removed
    source: bytes  # as read: the original line, or the framed record
    location: int  # 1-based line (Line) or record number


@dataclass(slots=True)
class Batch:
    """One request's worth of records from one object."""

    body: bytes
    first: int  # location of the first record
    last: int  # location of the last record
    count: int
    unit: str  # "line", "record" or "object"
    locations: list[int] | None = None  # each record's location, when not first..last
    inputs: list[bytes] | None = None  # the records as read, for JoinSource/OutputFilter

    def location(self, index: int) -> int:
        if self.locations is not None:
            return self.locations[index]
        return self.first + index

    def describe(self) -> str:
        if self.unit == "object":
            return "the whole object"
        if self.count == 1 or self.first == self.last:
            return f"{self.unit} {self.first}"
        return f"{self.unit}s {self.first}-{self.last}"


def read_full(stream: BinaryIO, size: int) -> bytes:
    """Up to `size` bytes; fewer only at the end of the stream."""
    data = stream.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    total = len(data)
    while total < size:
        more = stream.read(size - total)
        if not more:
            break
        parts.append(more)
        total += len(more)
    return b"".join(parts)


def limit_text(limit: int) -> str:
    return f"MaxPayloadInMB ({limit // MB} MB)" if limit else "the 100 MB request limit"


# SplitType None


def whole_object(stream: BinaryIO, limit: int, keep_input: bool) -> Iterator[Batch]:
    """The object as one request; `limit` 0 means the worker's own 100 MB limit."""
    cap = limit or HARD_LIMIT
    data = read_full(stream, cap + 1)
    if len(data) > cap:
        raise RecordError(
            f"the object is larger than {limit_text(limit)}; with SplitType None every request "
            "carries a whole object. Use SplitType Line (or RecordIO, TFRecord) to split it"
            + (", or raise MaxPayloadInMB." if limit else ".")
        )
    if data:  # an empty object has an empty output; the model is not called
        yield Batch(data, 1, 1, 1, "object", inputs=[data] if keep_input else None)


# SplitType Line


def iter_lines(
    stream: BinaryIO, limit: int, transform: Callable[[bytes], bytes] | None = None
) -> Iterator[Record]:
    """Non-empty lines, without their line ending, numbered from 1 by physical line."""
    cap = (limit or HARD_LIMIT) + 2
    number = 0
    while True:
        line = stream.readline(cap)
        if not line:
            return
        number += 1
        if not line.endswith(b"\n") and len(line) == cap:
            raise RecordError(f"the record is larger than {limit_text(limit)}", location=number)
        if line.endswith(b"\n"):
            line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            continue
        if transform is None:
            yield Record(line, line, number)
            continue
        try:
            payload = transform(line)
        except RecordError as exc:
            exc.location = number
            raise
        yield Record(payload, line, number)


def line_chunks(stream: BinaryIO, limit: int) -> Iterator[Batch]:
    """MultiRecord mini-batches of whole lines, each at most `limit` bytes, cut straight from
    the byte stream. Empty lines are dropped, so the model never sees them."""
    carry = b""
    line = 1  # physical line number of the first line in `carry`
    eof = False
    while True:
        if not eof:
            data = read_full(stream, limit - len(carry))
            eof = len(data) < limit - len(carry)
            block = carry + data if carry else data
        else:
            block = carry
        if not block:
            return
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            if not eof:
                raise RecordError(f"the record is larger than {limit_text(limit)}", location=line)
            cut = len(block)
        chunk, carry = block[:cut], block[cut:]
        if not chunk.endswith(b"\n"):
            chunk += b"\n"
        physical = chunk.count(b"\n")
        batch = _chunk_batch(chunk, line, physical)
        line += physical
        if batch is not None:
            yield batch
        if eof and not carry:
            return


def _chunk_batch(chunk: bytes, first_line: int, physical: int) -> Batch | None:
    blank = chunk.startswith((b"\n", b"\r\n")) or b"\n\n" in chunk or b"\n\r\n" in chunk
    if not blank:
        return Batch(chunk, first_line, first_line + physical - 1, physical, "line")
    kept: list[bytes] = []
    locations: list[int] = []
    for offset, text in enumerate(chunk.split(b"\n")[:-1]):
        if text and text != b"\r":
            kept.append(text)
            locations.append(first_line + offset)
    if not kept:
        return None
    body = b"\n".join(kept) + b"\n"
    return Batch(body, locations[0], locations[-1], len(kept), "line", locations=locations)


# SplitType RecordIO and TFRecord


def iter_recordio(stream: BinaryIO, limit: int) -> Iterator[Record]:
    """MXNet RecordIO: magic, flag+length, data padded to 4 bytes; multi-part records (flags
    1, 2, 3) are joined with the magic number that separated them."""
    cap = limit or HARD_LIMIT
    number = 0
    offset = 0
    parts: list[bytes] = []
    framed: list[bytes] = []
    size = 0
    while True:
        header = read_full(stream, 8)
        if not header:
            if parts:
                raise RecordError(
                    "the file ends inside a multi-part RecordIO record", location=number + 1
                )
            return
        if len(header) < 8:
            raise RecordError("the file ends inside a RecordIO header", location=number + 1)
        magic, word = struct.unpack("<II", header)
        if magic != RECORDIO_MAGIC:
            raise RecordError(
                f"not RecordIO data: no magic number at byte {offset}", location=number + 1
            )
        flag, length = word >> 29, word & _LENGTH_MASK
        padded = length + (-length % 4)
        body = read_full(stream, padded)
        if len(body) < padded:
            raise RecordError("the file ends inside a RecordIO record", location=number + 1)
        offset += 8 + padded
        size += 8 + padded
        if size > cap:
            raise RecordError(f"the record is larger than {limit_text(limit)}", location=number + 1)
        parts.append(body[:length])
        framed.append(header + body)
        if flag in (0, 3):
            number += 1
            yield Record(_MAGIC_BYTES.join(parts), b"".join(framed), number)
            parts, framed, size = [], [], 0


def iter_tfrecord(stream: BinaryIO, limit: int) -> Iterator[Record]:
    """TFRecord: uint64 length, uint32 CRC of the length, data, uint32 CRC of the data."""
    cap = limit or HARD_LIMIT
    number = 0
    while True:
        header = read_full(stream, 12)
        if not header:
            return
        number += 1
        if len(header) < 12:
            raise RecordError("the file ends inside a TFRecord header", location=number)
        (length,) = struct.unpack("<Q", header[:8])
        if length + 16 > cap:
            raise RecordError(f"the record is larger than {limit_text(limit)}", location=number)
        rest = read_full(stream, length + 4)
        if len(rest) < length + 4:
            raise RecordError("the file ends inside a TFRecord record", location=number)
        yield Record(rest[:length], header + rest, number)


def frame_recordio(data: bytes) -> bytes:
    """One RecordIO record (single part), for tests and tools."""
    return struct.pack("<II", RECORDIO_MAGIC, len(data)) + data + b"\x00" * (-len(data) % 4)


def frame_tfrecord(data: bytes) -> bytes:
    """One TFRecord record with zero CRCs (Sabio does not check them), for tests and tools."""
    return struct.pack("<QI", len(data), 0) + data + struct.pack("<I", 0)


# Mini-batches


@dataclass(frozen=True)
class Framing:
    """How records of one SplitType become a request body, and back (to find a bad record)."""

    split_type: str

    @property
    def unit(self) -> str:
        return "line" if self.split_type == LINE else "record"

    def records(
        self, stream: BinaryIO, limit: int, transform: Callable[[bytes], bytes] | None = None
    ) -> Iterator[Record]:
        if self.split_type == LINE:
            return iter_lines(stream, limit, transform)
        if self.split_type == RECORDIO:
            return iter_recordio(stream, limit)
        return iter_tfrecord(stream, limit)

    def size(self, record: Record, multi: bool) -> int:
        if not multi:
            return len(record.payload)
        if self.split_type == LINE:
            return len(record.payload) + 1
        return len(record.source)

    def body(self, records: list[Record], multi: bool) -> bytes:
        if not multi:
            return records[0].payload
        if self.split_type == LINE:
            return b"".join(r.payload + b"\n" for r in records)
        return b"".join(r.source for r in records)

    def pieces(self, body: bytes) -> list[bytes]:
        """A MultiRecord body cut back into its records' pieces."""
        if self.split_type == LINE:
            return body.split(b"\n")[:-1] if body.endswith(b"\n") else body.split(b"\n")
        return [r.source for r in self.records(io.BytesIO(body), 0)]

    def join(self, pieces: list[bytes]) -> bytes:
        if self.split_type == LINE:
            return b"".join(p + b"\n" for p in pieces)
        return b"".join(pieces)


def group(
    records: Iterable[Record], framing: Framing, multi: bool, limit: int, keep_inputs: bool
) -> Iterator[Batch]:
    """Mini-batches: one record each (SingleRecord, or MaxPayloadInMB 0), else as many records
    as fit in `limit` bytes. A record larger than the limit is an error naming it."""
    pending: list[Record] = []
    size = 0
    batching = multi and limit > 0
    for record in records:
        piece = framing.size(record, multi)
        if limit and piece > limit:
            raise RecordError(
                f"the record is larger than {limit_text(limit)}", location=record.location
            )
        if not batching:
            yield _batch([record], framing, multi, keep_inputs)
            continue
        if pending and size + piece > limit:
            yield _batch(pending, framing, multi, keep_inputs)
            pending, size = [], 0
        pending.append(record)
        size += piece
    if pending:
        yield _batch(pending, framing, multi, keep_inputs)


def _batch(records: list[Record], framing: Framing, multi: bool, keep_inputs: bool) -> Batch:
    first, last = records[0].location, records[-1].location
    contiguous = last - first + 1 == len(records)
    return Batch(
        framing.body(records, multi),
        first,
        last,
        len(records),
        framing.unit,
        locations=None if contiguous else [r.location for r in records],
        inputs=[r.source for r in records] if keep_inputs else None,
    )


def assemble(body: bytes, assemble_with: str) -> bytes:
    """AssembleWith Line: every response ends with a newline (one is added when missing)."""
    if assemble_with == LINE and not body.endswith(b"\n"):
        return body + b"\n"
    return body
