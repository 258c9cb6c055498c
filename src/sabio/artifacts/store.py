"""The contract every artifact backend implements: objects, buckets and multipart uploads on URIs.

It is the subset of S3 the platform and the S3 gateway need, so the embedded store and a real
S3-compatible store are interchangeable: the same contract tests run against both."""

from __future__ import annotations

import abc
import builtins
import hashlib
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Generic, TypeVar

from sabio.artifacts.errors import InvalidPartOrderError
from sabio.artifacts.streams import buffered
from sabio.artifacts.uri import ObjectUri, check_key

CHUNK = 1024 * 1024
MIN_PART_BYTES = 5 * 1024 * 1024  # S3's minimum for every part but the last
MAX_PARTS = 10_000


@dataclass(frozen=True)
class ObjectMetadata:
    """What S3 keeps with an object besides its bytes: the standard headers and `x-amz-meta-*`."""

    content_type: str | None = None
    content_disposition: str | None = None
    content_encoding: str | None = None
    content_language: str | None = None
    cache_control: str | None = None
    expires: str | None = None
    user: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectInfo:
    uri: ObjectUri
    size: int
    modified: float
    etag: str = ""  # MD5 hex, or "<hex>-<parts>" after a multipart upload; never quoted
    metadata: ObjectMetadata = field(default_factory=ObjectMetadata)
    checksums: Mapping[str, str] = field(default_factory=dict)  # "CRC32" -> base64 value
    part_sizes: tuple[int, ...] = ()  # of a multipart object, for reads by part number


@dataclass(frozen=True)
class BucketInfo:
    name: str
    created: float


@dataclass(frozen=True)
class PartInfo:
    number: int
    etag: str
    size: int
    modified: float
    checksums: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UploadInfo:
    uri: ObjectUri
    upload_id: str
    initiated: float
    metadata: ObjectMetadata = field(default_factory=ObjectMetadata)
    checksum_algorithm: str | None = None


T = TypeVar("T")
Chunk = bytes | bytearray | memoryview  # what writers accept


class Writer(abc.ABC, Generic[T]):
    """The bytes of a new object or part: invisible to readers until `commit`.

    Used as a context manager, an exception (or leaving without commit) aborts it."""

    @abc.abstractmethod
    def write(self, data: Chunk) -> None:
        """Append `data`, which may be a view of a buffer the caller reuses once this returns:
        copy what is kept beyond the call."""

    @abc.abstractmethod
    def commit(self, checksums: Mapping[str, str] | None = None) -> T:
        """Make the bytes visible, atomically; `checksums` are recorded as verified."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Throw the bytes away; safe to call more than once, and a no-op after commit."""

    def __enter__(self) -> Writer[T]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()


class ObjectReader(abc.ABC):
    """One version of an object, opened: its `info` and bytes belong together even if the
    object is replaced while it is being read."""

    info: ObjectInfo

    @abc.abstractmethod
    def chunks(self, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """The bytes from `start` up to (not including) `stop`, in pieces of about CHUNK."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ArtifactStore(abc.ABC):
    """Objects addressed by `ObjectUri`. Writes are atomic: readers never see half an object."""

    # Objects

    @abc.abstractmethod
    def stat(self, uri: ObjectUri) -> ObjectInfo | None:
        """The object's size, time, ETag and metadata, or None when it does not exist."""

    def open_read(self, uri: ObjectUri, start: int = 0, length: int | None = None) -> BinaryIO:
        """A binary stream of the object (or of a byte range of it); raises FileNotFoundError
        (a `NoSuchKeyError`) when it does not exist."""
        reader = self.open_object(uri)
        stop = None if length is None else start + length
        return buffered(reader.chunks(start, stop), reader.close)

    @abc.abstractmethod
    def open_object(self, uri: ObjectUri) -> ObjectReader:
        """The current version of the object, for consistent metadata and ranged reads."""

    @abc.abstractmethod
    def open_write(
        self, uri: ObjectUri, metadata: ObjectMetadata | None = None
    ) -> Writer[ObjectInfo]:
        """A writer that replaces the object atomically when committed."""

    @abc.abstractmethod
    def list(self, prefix: ObjectUri, start_after: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with the prefix's key (and sorts after `start_after`),
        in key order. Listings carry size, time and ETag; metadata only where cheap."""

    @abc.abstractmethod
    def delete(self, uri: ObjectUri) -> bool:
        """Remove the object; False when it was not there."""

    def write(
        self, uri: ObjectUri, stream: BinaryIO, metadata: ObjectMetadata | None = None
    ) -> ObjectInfo:
        """Store the stream's bytes as the object, atomically."""
        with self.open_write(uri, metadata) as writer:
            while chunk := stream.read(CHUNK):
                writer.write(chunk)
            return writer.commit()

    def copy(
        self, source: ObjectUri, target: ObjectUri, metadata: ObjectMetadata | None = None
    ) -> ObjectInfo:
        """Copy an object; `metadata` replaces the source's, None keeps it."""
        with self.open_object(source) as reader:
            kept = reader.info.metadata if metadata is None else metadata
            with self.open_write(target, kept) as writer:
                for chunk in reader.chunks():
                    writer.write(chunk)
                whole = {k: v for k, v in reader.info.checksums.items() if "-" not in v}
                return writer.commit(whole)

    def validate_key(self, uri: ObjectUri) -> None:
        """Raise ValidationError if this backend cannot hold the key (S3's own rules plus the
        backend's); the gateway calls it before it reads a request body."""
        check_key(uri.key, str(uri))

    # Buckets

    @abc.abstractmethod
    def list_buckets(self) -> builtins.list[BucketInfo]: ...

    @abc.abstractmethod
    def bucket(self, name: str) -> BucketInfo | None:
        """The bucket, or None when it does not exist."""

    @abc.abstractmethod
    def create_bucket(self, name: str) -> BucketInfo:
        """Raises BucketAlreadyOwnedByYouError when it exists."""

    @abc.abstractmethod
    def delete_bucket(self, name: str) -> None:
        """Raises NoSuchBucketError, or BucketNotEmptyError while it holds objects."""

    # Multipart uploads

    @abc.abstractmethod
    def create_multipart_upload(
        self,
        uri: ObjectUri,
        metadata: ObjectMetadata | None = None,
        checksum_algorithm: str | None = None,
    ) -> str:
        """Start an upload; returns its id."""

    @abc.abstractmethod
    def upload(self, uri: ObjectUri, upload_id: str) -> UploadInfo:
        """The upload, or NoSuchUploadError."""

    @abc.abstractmethod
    def open_part_write(
        self, uri: ObjectUri, upload_id: str, number: int, size: int | None = None
    ) -> Writer[PartInfo]:
        """A writer for part `number` (1 to 10000); a later upload of the same number wins.

        `size`, when known, is the exact length the part will have (it lets a backend place
        the bytes where they belong in the object)."""

    @abc.abstractmethod
    def list_parts(self, uri: ObjectUri, upload_id: str) -> builtins.list[PartInfo]: ...

    @abc.abstractmethod
    def complete_multipart_upload(
        self,
        uri: ObjectUri,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        checksums: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Join the named parts (number, ETag), in ascending order, into the object, atomically.

        Raises InvalidPartOrderError, InvalidPartError (unknown part or wrong ETag) or
        EntityTooSmallError (a part but the last under 5 MiB)."""

    @abc.abstractmethod
    def abort_multipart_upload(self, uri: ObjectUri, upload_id: str) -> None: ...

    @abc.abstractmethod
    def list_multipart_uploads(self, bucket: str, prefix: str = "") -> builtins.list[UploadInfo]:
        """Uploads in progress, by key then initiation time."""

    def abort_uploads_started_before(self, cutoff: float) -> int:
        """Abort every multipart upload initiated before `cutoff` (epoch seconds), freeing its
        parts; the number aborted. A backend whose service expires abandoned uploads itself
        (S3's lifecycle rules) keeps this default and leaves them to it."""
        return 0

    # Files

    def upload_file(self, path: Path, uri: ObjectUri) -> ObjectInfo:
        with path.open("rb") as stream:
            return self.write(uri, stream)

    def download_file(self, uri: ObjectUri, path: Path) -> None:
        """Copy the object to a local file, atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        try:
            with self.open_read(uri) as source, partial.open("wb") as target:
                while chunk := source.read(CHUNK):
                    target.write(chunk)
            partial.replace(path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise


def check_part_list(parts: Sequence[tuple[int, str]]) -> None:
    """S3's rule for CompleteMultipartUpload: part numbers strictly ascending."""
    numbers = [number for number, _ in parts]
    if any(b <= a for a, b in itertools.pairwise(numbers)):
        raise InvalidPartOrderError(
            "The list of parts was not in ascending order. Parts must be ordered by part number."
        )


def multipart_etag(md5_hex_digests: Sequence[str]) -> str:
    """S3's ETag of a multipart object: the MD5 of the parts' binary MD5s, then `-<count>`."""
    joined = b"".join(bytes.fromhex(d) for d in md5_hex_digests)
    return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(md5_hex_digests)}"


def normalize_etag(etag: str) -> str:
    return etag.strip().strip('"')
