"""The parts of a multipart upload in the embedded store: their records, and the writer that
puts a part's bytes in place in the upload's `data` file or in a file of its own."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sabio.artifacts.errors import no_such_upload
from sabio.artifacts.local_files import TempFile
from sabio.artifacts.local_metadata import FileIdentity, boot_id
from sabio.artifacts.store import Chunk, PartInfo, Writer
from sabio.errors import ValidationError

if TYPE_CHECKING:
    from sabio.artifacts.local_multipart import LocalUploads

DATA = "data"
OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class PartRecord:
    number: int
    etag: str
    size: int
    modified: float
    checksums: Mapping[str, str] = field(default_factory=dict)
    boot: str | None = None  # None: the bytes were fsynced
    offset: int | None = None  # in `data`; None: in `<n>.part`
    identity: FileIdentity | None = None  # of `<n>.part`

    def encode(self) -> dict[str, Any]:
        identity = self.identity
        return {
            "etag": self.etag,
            "size": self.size,
            "modified": self.modified,
            "checksums": dict(self.checksums),
            "boot": self.boot,
            "offset": self.offset,
            "identity": None
            if identity is None
            else [identity.ino, identity.size, identity.mtime_ns],
        }

    @classmethod
    def decode(cls, number: int, data: Mapping[str, Any]) -> PartRecord:
        identity = data.get("identity")
        return cls(
            number,
            str(data["etag"]),
            int(data["size"]),
            float(data["modified"]),
            {str(k): str(v) for k, v in (data.get("checksums") or {}).items()},
            data.get("boot"),
            None if data.get("offset") is None else int(data["offset"]),
            None if identity is None else FileIdentity(*(int(v) for v in identity)),
        )

    def info(self) -> PartInfo:
        return PartInfo(self.number, self.etag, self.size, self.modified, self.checksums)


class LocalPartWriter(Writer[PartInfo]):
    """Writes one part in place in `data` when its declared size fits the upload's stride,
    else into a temporary file that becomes `<n>.part`."""

    def __init__(
        self, uploads: LocalUploads, directory: Path, number: int, size: int | None
    ) -> None:
        self.uploads, self.directory, self.number = uploads, directory, number
        self.fd: int | None = None
        self.temp: TempFile | None = None
        self.offset: int | None = None
        self.limit = size or 0
        self.written = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._done = False
        stride = uploads.stride(directory, size) if size else 0
        if size and stride and size <= stride:
            # The old bytes of this part are about to be overwritten: forget them first.
            (directory / f"{number}.json").unlink(missing_ok=True)
            self.offset = (number - 1) * stride
            self.fd = os.open(directory / DATA, OPEN_FLAGS, 0o644)
        else:
            self.temp = TempFile(directory)

    def write(self, data: Chunk) -> None:
        if self.temp is not None:
            self.temp.write(data)
            return
        assert self.fd is not None and self.offset is not None, "write after commit"
        if self.written + len(data) > self.limit:
            raise ValidationError(f"Part {self.number} is longer than its declared size.")
        self._md5.update(data)
        view = memoryview(data)
        while view:
            count = os.pwrite(self.fd, view, self.offset + self.written)
            self.written += count
            view = view[count:]

    def commit(self, checksums: Mapping[str, str] | None = None) -> PartInfo:
        boot = boot_id()
        try:
            if self.temp is not None:
                identity = self.temp.finish(sync=boot is None)
                etag, size = self.temp.md5_hex, self.temp.size
            else:
                assert self.fd is not None
                if self.written != self.limit:
                    raise ValidationError(f"Part {self.number} is shorter than its declared size.")
                if boot is None:
                    os.fsync(self.fd)
                os.close(self.fd)
                self.fd = None
                identity, etag, size = None, self._md5.hexdigest(), self.written
            record = PartRecord(
                self.number,
                etag,
                size,
                time.time(),
                dict(checksums or {}),
                boot,
                self.offset,
                identity,
            )
            self.uploads.save_part(
                self.directory, record, None if self.temp is None else self.temp.path
            )
        except FileNotFoundError:  # aborted or completed meanwhile
            self.abort()
            raise no_such_upload(self.directory.name) from None
        except BaseException:
            self.abort()
            raise
        self._done = True
        return record.info()

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.temp is not None:
            self.temp.discard()
