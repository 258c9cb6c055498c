"""Splitting objects into records and mini-batches: pure functions over byte streams."""

from __future__ import annotations

import io
import struct

import pytest

from sabio.transform.records import (
    LINE,
    RECORDIO,
    RECORDIO_MAGIC,
    TFRECORD,
    Batch,
    Framing,
    Record,
    RecordError,
    assemble,
    frame_recordio,
    frame_tfrecord,
    group,
    iter_lines,
    iter_recordio,
    iter_tfrecord,
    line_chunks,
    whole_object,
)


class Trickle(io.RawIOBase):
    """A stream that returns at most `step` bytes per read, as a network stream may."""

    def __init__(self, data: bytes, step: int = 3) -> None:
        self.data = data
        self.position = 0
        self.step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self.data[self.position : self.position + min(self.step, len(buffer))]
        buffer[: len(chunk)] = chunk
        self.position += len(chunk)
        return len(chunk)


def stream(data: bytes) -> io.BufferedReader:
    return io.BufferedReader(Trickle(data), buffer_size=4)


def test_lines_skip_blank_lines_and_keep_physical_numbers() -> None:
    data = b"a,1\r\n\nb,2\n\r\nc,3"
    records = list(iter_lines(stream(data), 0))
    assert [(r.payload, r.location) for r in records] == [(b"a,1", 1), (b"b,2", 3), (b"c,3", 5)]


def test_a_line_longer_than_the_limit_is_named() -> None:
    data = b"short\n" + b"x" * 40 + b"\nafter\n"
    with pytest.raises(RecordError, match="larger than MaxPayloadInMB") as caught:
        list(iter_lines(stream(data), 10))
    assert caught.value.location == 2


def test_input_transform_errors_carry_the_line() -> None:
    def transform(line: bytes) -> bytes:
        if line == b"bad":
            raise RecordError("cannot filter")
        return line.upper()

    records = iter_lines(stream(b"ok\n\nbad\n"), 0, transform)
    assert next(records).payload == b"OK"
    with pytest.raises(RecordError) as caught:
        next(records)
    assert caught.value.location == 3


def lines_of(batches: list[Batch]) -> list[bytes]:
    return [line for b in batches for line in b.body.split(b"\n")[:-1]]


@pytest.mark.parametrize("limit", [8, 9, 10, 16, 64, 1000])
def test_line_chunks_cut_at_newlines_within_the_limit(limit: int) -> None:
    lines = [f"{i},{i * i}".encode() for i in range(40)]
    data = b"\n".join(lines)  # no newline at the end
    batches = list(line_chunks(stream(data), limit))
    assert lines_of(batches) == lines
    assert all(len(b.body) <= limit for b in batches)
    assert all(b.body.endswith(b"\n") for b in batches)
    assert sum(b.count for b in batches) == 40
    number = 1
    for batch in batches:
        assert (batch.first, batch.last) == (number, number + batch.count - 1)
        number += batch.count


def test_line_chunks_drop_blank_lines_and_remember_where_records_were() -> None:
    data = b"\na\n\n\nb\r\n\r\nc\n"
    (batch,) = list(line_chunks(stream(data), 100))
    assert batch.body == b"a\nb\r\nc\n"
    assert batch.locations == [2, 5, 7]
    assert (batch.first, batch.last, batch.count) == (2, 7, 3)
    assert batch.location(1) == 5
    assert batch.describe() == "lines 2-7"


def test_line_chunks_refuse_a_line_that_cannot_fit() -> None:
    with pytest.raises(RecordError) as caught:
        list(line_chunks(stream(b"ok\n" + b"y" * 50 + b"\n"), 20))
    assert caught.value.location == 2


def test_line_chunks_of_only_blank_lines_yield_nothing() -> None:
    assert list(line_chunks(stream(b"\n\n\n"), 10)) == []
    assert list(line_chunks(stream(b""), 10)) == []


def records(*payloads: bytes) -> list[Record]:
    return [Record(p, p, i + 1) for i, p in enumerate(payloads)]


def test_multi_record_batches_fill_up_to_the_limit() -> None:
    framing = Framing(LINE)
    batches = list(group(records(b"aaa", b"bbb", b"ccc", b"d"), framing, True, 8, False))
    assert [b.body for b in batches] == [b"aaa\nbbb\n", b"ccc\nd\n"]
    assert [(b.first, b.last, b.count) for b in batches] == [(1, 2, 2), (3, 4, 2)]


def test_single_record_and_unlimited_payload_send_one_record_per_request() -> None:
    framing = Framing(LINE)
    single = list(group(records(b"a", b"b"), framing, False, 8, True))
    assert [b.body for b in single] == [b"a", b"b"]
    assert single[1].inputs == [b"b"]
    unlimited = list(group(records(b"a", b"b"), framing, True, 0, False))
    assert [b.body for b in unlimited] == [b"a\n", b"b\n"]


def test_a_record_over_the_limit_is_an_error_with_its_location() -> None:
    with pytest.raises(RecordError) as caught:
        list(group(records(b"ok", b"x" * 20), Framing(LINE), True, 10, False))
    assert caught.value.location == 2


def test_whole_object_respects_the_payload_limit() -> None:
    (batch,) = list(whole_object(stream(b"abc"), 10, True))
    assert (batch.body, batch.inputs, batch.describe()) == (b"abc", [b"abc"], "the whole object")
    assert list(whole_object(stream(b""), 10, False)) == []
    with pytest.raises(RecordError, match="Use SplitType Line"):
        list(whole_object(stream(b"x" * 11), 10, False))


def test_recordio_single_and_multi_part_records() -> None:
    magic = struct.pack("<I", RECORDIO_MAGIC)
    part_one = struct.pack("<II", RECORDIO_MAGIC, (1 << 29) | 3) + b"abc\x00"
    part_two = struct.pack("<II", RECORDIO_MAGIC, (3 << 29) | 2) + b"de\x00\x00"
    data = frame_recordio(b"hello") + part_one + part_two + frame_recordio(b"")
    found = list(iter_recordio(stream(data), 0))
    assert [r.payload for r in found] == [b"hello", b"abc" + magic + b"de", b""]
    assert found[1].source == part_one + part_two
    assert [r.location for r in found] == [1, 2, 3]


def test_recordio_errors() -> None:
    with pytest.raises(RecordError, match="no magic number at byte 12") as caught:
        list(iter_recordio(stream(frame_recordio(b"ok") + b"garbage!"), 0))
    assert caught.value.location == 2
    with pytest.raises(RecordError, match="ends inside a RecordIO record"):
        list(iter_recordio(stream(frame_recordio(b"hello")[:-3]), 0))
    with pytest.raises(RecordError, match="larger than"):
        list(iter_recordio(stream(frame_recordio(b"x" * 64)), 16))


def test_tfrecord_records() -> None:
    data = frame_tfrecord(b"one") + frame_tfrecord(b"two!")
    found = list(iter_tfrecord(stream(data), 0))
    assert [r.payload for r in found] == [b"one", b"two!"]
    assert found[0].source == frame_tfrecord(b"one")
    with pytest.raises(RecordError, match="ends inside a TFRecord record"):
        list(iter_tfrecord(stream(data[:-2]), 0))


@pytest.mark.parametrize("split", [RECORDIO, TFRECORD])
def test_framed_records_keep_framing_in_multi_record_and_split_back(split: str) -> None:
    framing = Framing(split)
    frame = frame_recordio if split == RECORDIO else frame_tfrecord
    data = b"".join(frame(p) for p in (b"a", b"bb", b"ccc"))
    found = list(framing.records(stream(data), 0))
    (multi,) = list(group(found, framing, True, 1000, False))
    assert multi.body == data
    assert framing.pieces(multi.body) == [frame(b"a"), frame(b"bb"), frame(b"ccc")]
    assert framing.join(framing.pieces(multi.body)) == data
    single = list(group(found, framing, False, 1000, False))
    assert [b.body for b in single] == [b"a", b"bb", b"ccc"]
    assert single[2].describe() == "record 3"


def test_line_pieces_round_trip() -> None:
    framing = Framing(LINE)
    assert framing.pieces(b"a\nb\n") == [b"a", b"b"]
    assert framing.join([b"a", b"b"]) == b"a\nb\n"


def test_assemble_with_line_adds_a_newline_only_when_missing() -> None:
    assert assemble(b"1\n2\n", "Line") == b"1\n2\n"
    assert assemble(b"[1]", "Line") == b"[1]\n"
    assert assemble(b"", "Line") == b"\n"
    assert assemble(b"[1]", "None") == b"[1]"
