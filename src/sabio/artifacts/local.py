"""The embedded default: `s3://bucket/key` is the file `<root>/bucket/key`."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from sabio.artifacts.store import ArtifactStore, ObjectInfo
from sabio.artifacts.uri import ObjectUri
from sabio.errors import ValidationError

_PARTIAL_PREFIX = ".sabio-partial-"


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, uri: ObjectUri) -> Path:
        """The file behind a URI; a path that resolves outside its bucket is rejected."""
        bucket_dir = self.root / uri.bucket
        path = (bucket_dir / uri.key) if uri.key else bucket_dir
        resolved = path.resolve()
        if resolved != bucket_dir.resolve() and not resolved.is_relative_to(bucket_dir.resolve()):
            raise ValidationError(f"'{uri}' resolves outside its bucket.")
        return resolved

    def stat(self, uri: ObjectUri) -> ObjectInfo | None:
        path = self.path_for(uri)
        if not path.is_file():
            return None
        stat = path.stat()
        return ObjectInfo(uri, stat.st_size, stat.st_mtime)

    def open_read(self, uri: ObjectUri) -> BinaryIO:
        path = self.path_for(uri)
        if not path.is_file():
            raise FileNotFoundError(str(uri))
        return path.open("rb")

    def write(self, uri: ObjectUri, stream: BinaryIO) -> ObjectInfo:
        if not uri.key or uri.key.endswith("/"):
            raise ValidationError(f"'{uri}' does not name an object.")
        path = self.path_for(uri)
        if path.is_dir():
            raise ValidationError(f"'{uri}' is a prefix of other objects; choose another key.")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ValidationError(
                f"'{uri}' lies under a key that is already an object; choose another key."
            ) from None
        fd, temp = tempfile.mkstemp(prefix=_PARTIAL_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as target:
                while chunk := stream.read(1024 * 1024):
                    target.write(chunk)
                target.flush()
                os.fsync(target.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        info = self.stat(uri)
        assert info is not None
        return info

    def list(self, prefix: ObjectUri) -> Iterator[ObjectInfo]:
        bucket_dir = self.root / prefix.bucket
        if not bucket_dir.is_dir():
            return
        directory, _, _ = prefix.key.rpartition("/")
        start = self.path_for(ObjectUri(prefix.scheme, prefix.bucket, directory))
        if not start.is_dir():
            return
        found: list[tuple[str, Path]] = []
        for dirpath, dirnames, filenames in os.walk(start, followlinks=False):
            dirnames[:] = [d for d in dirnames if not Path(dirpath, d).is_symlink()]
            for filename in filenames:
                full = Path(dirpath, filename)
                if filename.startswith(_PARTIAL_PREFIX) or full.is_symlink():
                    continue
                key = full.relative_to(bucket_dir).as_posix()
                if key.startswith(prefix.key):
                    found.append((key, full))
        for key, full in sorted(found):
            stat = full.stat()
            yield ObjectInfo(
                ObjectUri(prefix.scheme, prefix.bucket, key), stat.st_size, stat.st_mtime
            )

    def delete(self, uri: ObjectUri) -> bool:
        path = self.path_for(uri)
        if not path.is_file():
            return False
        path.unlink()
        return True
