"""A file-like view of an iterator of byte chunks, so every backend can offer `open_read`."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import BinaryIO


class ChunkStream(io.RawIOBase):
    """Reads from `chunks`; `on_close` releases what produced them (a file, a connection)."""

    def __init__(self, chunks: Iterator[bytes], on_close: Callable[[], None]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")
        self._on_close = on_close

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        if not self.closed:
            try:
                self._on_close()
            finally:
                super().close()


def buffered(chunks: Iterator[bytes], on_close: Callable[[], None]) -> BinaryIO:
    return io.BufferedReader(ChunkStream(chunks, on_close), buffer_size=1024 * 1024)
