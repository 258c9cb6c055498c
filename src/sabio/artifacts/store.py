"""The contract every artifact backend implements: a few byte-level operations on URIs."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sabio.artifacts.uri import ObjectUri


@dataclass(frozen=True)
class ObjectInfo:
    uri: ObjectUri
    size: int
    modified: float


class ArtifactStore(abc.ABC):
    """Objects addressed by `ObjectUri`. Writes are atomic: readers never see half an object."""

    @abc.abstractmethod
    def stat(self, uri: ObjectUri) -> ObjectInfo | None:
        """The object's size and time, or None when it does not exist."""

    @abc.abstractmethod
    def open_read(self, uri: ObjectUri) -> BinaryIO:
        """A binary stream of the object; raises FileNotFoundError when it does not exist."""

    @abc.abstractmethod
    def write(self, uri: ObjectUri, stream: BinaryIO) -> ObjectInfo:
        """Store the stream's bytes as the object, atomically."""

    @abc.abstractmethod
    def list(self, prefix: ObjectUri) -> Iterator[ObjectInfo]:
        """Every object whose key starts with the prefix's key, in key order."""

    @abc.abstractmethod
    def delete(self, uri: ObjectUri) -> bool:
        """Remove the object; False when it was not there."""

    def upload_file(self, path: Path, uri: ObjectUri) -> ObjectInfo:
        with path.open("rb") as stream:
            return self.write(uri, stream)

    def download_file(self, uri: ObjectUri, path: Path) -> None:
        """Copy the object to a local file, atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        try:
            with self.open_read(uri) as source, partial.open("wb") as target:
                while chunk := source.read(1024 * 1024):
                    target.write(chunk)
            partial.replace(path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
