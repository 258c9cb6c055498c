"""File-level pieces of the embedded store: hidden temporary files that become objects by a
rename, and readers that hold one version of an object open."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sabio.artifacts.local_metadata import PARTIAL_PREFIX, FileIdentity
from sabio.artifacts.store import CHUNK, Chunk, ObjectInfo, ObjectReader


class TempFile:
    """A hidden file in the directory it will be renamed into, with the MD5 of what went in.

    Its name starts with PARTIAL_PREFIX, which listings skip, so a crash leaves at most an
    invisible leftover, never half an object."""

    def __init__(self, directory: Path, *, hashing: bool = True) -> None:
        fd, name = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=directory)
        self.fd: int | None = fd
        self.path = Path(name)
        self.size = 0
        self._md5 = hashlib.md5(usedforsecurity=False) if hashing else None

    @property
    def md5_hex(self) -> str:
        assert self._md5 is not None, "this file was opened without hashing"
        return self._md5.hexdigest()

    def write(self, data: Chunk) -> None:
        assert self.fd is not None, "write after finish"
        if self._md5 is not None:
            self._md5.update(data)
        self._write_all(data)

    def _write_all(self, data: Chunk) -> None:
        assert self.fd is not None, "write after finish"
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        self.size += len(data)

    def append_range(self, source: Path, offset: int, size: int) -> None:
        """Append `size` bytes of a file from `offset`, in the kernel where it can
        (copy_file_range); the MD5 is not updated (joined parts bring their own)."""
        assert self.fd is not None, "write after finish"
        with source.open("rb") as handle:
            remaining = size
            while remaining:
                try:
                    copied = os.copy_file_range(handle.fileno(), self.fd, remaining, offset)
                except OSError:
                    copied = 0
                if copied == 0:  # not supported here: copy through user space
                    while remaining:
                        chunk = os.pread(handle.fileno(), min(CHUNK, remaining), offset)
                        if not chunk:
                            raise OSError(f"{source} is shorter than expected")
                        self._write_all(chunk)
                        offset += len(chunk)
                        remaining -= len(chunk)
                    break
                offset += copied
                remaining -= copied
                self.size += copied

    def finish(self, *, sync: bool = True) -> FileIdentity:
        """Close the file (fsynced unless told not to) and return the identity it will keep
        after the rename."""
        assert self.fd is not None, "finish twice"
        try:
            if sync:
                os.fsync(self.fd)
            identity = FileIdentity.of(os.fstat(self.fd))
        finally:
            os.close(self.fd)
            self.fd = None
        return identity

    def discard(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.path.unlink(missing_ok=True)


class LocalObjectReader(ObjectReader):
    """An open file descriptor: reads see the version that was opened even if it is replaced."""

    def __init__(self, fd: int, info: ObjectInfo) -> None:
        self.fd = fd
        self.info = info

    def chunks(self, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        end = self.info.size if stop is None else min(stop, self.info.size)
        position = max(start, 0)
        while position < end:
            data = os.pread(self.fd, min(CHUNK, end - position), position)
            if not data:
                raise OSError(f"{self.info.uri} was truncated while it was being read")
            position += len(data)
            yield data

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
