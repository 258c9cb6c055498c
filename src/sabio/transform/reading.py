"""Reading one input object as mini-batches: decompression, framing, grouping, and the
InputFilter where it applies to the whole object."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import BinaryIO

from sabio.artifacts.store import ArtifactStore
from sabio.transform.inputs import InputObject
from sabio.transform.joins import Processor
from sabio.transform.options import Effective, Options
from sabio.transform.records import (
    LINE,
    MB,
    MULTI_RECORD,
    NONE,
    Batch,
    Framing,
    group,
    line_chunks,
    whole_object,
)

_TAKE_BYTES = MB
_TAKE_ITEMS = 256


class _Gunzip(gzip.GzipFile):
    """A gzip stream that also closes the stream it reads from."""

    def __init__(self, source: BinaryIO) -> None:
        super().__init__(fileobj=source, mode="rb")
        self._source = source

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._source.close()


def open_input(store: ArtifactStore, obj: InputObject, compression: str) -> BinaryIO:
    """The object's bytes, decompressed when the job says they are gzipped."""
    stream = store.open_read(obj.uri)
    if compression == "Gzip":
        return _Gunzip(stream)  # type: ignore[return-value]
    return stream


def take(batches: Iterator[Batch]) -> list[Batch]:
    """The next few mini-batches (about 1 MB, at least one); empty at the end."""
    taken: list[Batch] = []
    size = 0
    for batch in batches:
        taken.append(batch)
        size += len(batch.body)
        if size >= _TAKE_BYTES or len(taken) >= _TAKE_ITEMS:
            break
    return taken


def _filtered(batches: Iterator[Batch], processor: Processor) -> Iterator[Batch]:
    """SplitType None: the InputFilter applies to the whole object, the one record."""
    for batch in batches:
        batch.body = processor.filter_input(batch.body)
        yield batch


def batches_of(
    stream: BinaryIO, options: Options, effective: Effective, limit: int
) -> Iterator[Batch]:
    """The object's mini-batches, each at most `limit` bytes (0: no limit)."""
    processor = options.processor
    split = options.split_type
    if split == NONE:
        batches = whole_object(stream, limit, processor.per_record_output)
        return _filtered(batches, processor) if processor.filters_input else batches
    multi = effective.batch_strategy == MULTI_RECORD
    fast = not processor.filters_input and not processor.per_record_output
    if split == LINE and multi and limit and fast:
        return line_chunks(stream, limit)
    framing = Framing(split)
    transform = processor.filter_input if processor.filters_input else None
    records = framing.records(stream, limit, transform)
    return group(records, framing, multi, limit, processor.per_record_output)
