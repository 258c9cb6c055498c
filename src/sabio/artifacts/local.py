"""The embedded default: `s3://bucket/key` is the file `<root>/bucket/key`.

Metadata and multipart uploads live under `<root>/.sabio/` (see `local_metadata.py` and
`local_multipart.py`); the bucket directories hold nothing but the objects themselves."""

from __future__ import annotations

import builtins
import contextlib
import os
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from sabio.artifacts.errors import (
    BucketAlreadyOwnedByYouError,
    BucketNotEmptyError,
    no_such_bucket,
    no_such_key,
)
from sabio.artifacts.local_files import LocalObjectReader, TempFile
from sabio.artifacts.local_metadata import (
    FOLDER_FILE,
    PARTIAL_PREFIX,
    BucketRecords,
    FileIdentity,
    Record,
    Sidecars,
)
from sabio.artifacts.local_multipart import LocalUploads
from sabio.artifacts.store import (
    CHUNK,
    ArtifactStore,
    BucketInfo,
    Chunk,
    ObjectInfo,
    ObjectMetadata,
    PartInfo,
    UploadInfo,
    Writer,
)
from sabio.artifacts.streams import buffered
from sabio.artifacts.uri import ObjectUri, check_bucket, check_key, valid_bucket
from sabio.errors import ValidationError

_MAX_NAME_BYTES = 255  # one path segment on every common file system


class LocalObjectWriter(Writer[ObjectInfo]):
    def __init__(
        self,
        store: LocalArtifactStore,
        uri: ObjectUri,
        metadata: ObjectMetadata | None,
        *,
        hashing: bool = True,
    ) -> None:
        self.store = store
        self.uri = uri
        self.metadata = metadata or ObjectMetadata()
        self.temp = store.temp_file_for(uri, hashing=hashing)
        self._done = False

    def write(self, data: Chunk) -> None:
        self.temp.write(data)

    def commit(self, checksums: Mapping[str, str] | None = None) -> ObjectInfo:
        return self.commit_as(self.temp.md5_hex, checksums)

    def commit_as(
        self, etag: str, checksums: Mapping[str, str] | None, part_sizes: tuple[int, ...] = ()
    ) -> ObjectInfo:
        try:
            identity = self.temp.finish()
            record = Record(identity, etag, self.metadata, dict(checksums or {}), part_sizes)
            self.store.install(self.uri, self.temp.path, record)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return self.store.info(self.uri, record)

    def abort(self) -> None:
        if not self._done:
            self._done = True
            self.temp.discard()


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.sidecars = Sidecars(self.root)
        self.buckets = BucketRecords(self.root)
        self.uploads = LocalUploads(self)
        self._locks = [threading.Lock() for _ in range(64)]

    def lock(self, *names: str) -> threading.Lock:
        """One of a fixed set of locks, so the two renames of a commit (record, then file) are
        not interleaved with another commit to the same key."""
        return self._locks[hash(names) % len(self._locks)]

    # Paths

    def path_for(self, uri: ObjectUri) -> Path:
        """The file behind a URI; a path that resolves outside its bucket is rejected.

        A key ending in `/` (a folder marker, as consoles and `mkdir` in s3fs make) is the file
        FOLDER_FILE inside the directory of that name, so `a/` and `a/b` can both exist."""
        if not valid_bucket(uri.bucket):
            raise ValidationError(f"'{uri}' does not name a valid bucket.")
        check_key(uri.key, str(uri))
        bucket_dir = (self.root / uri.bucket).resolve()
        path = (bucket_dir / uri.key) if uri.key else bucket_dir
        resolved = path.resolve()
        if resolved != bucket_dir and not resolved.is_relative_to(bucket_dir):
            raise ValidationError(f"'{uri}' resolves outside its bucket.")
        if uri.key.endswith("/") and resolved != bucket_dir:
            return resolved / FOLDER_FILE
        return resolved

    def validate_key(self, uri: ObjectUri) -> None:
        super().validate_key(uri)
        segments = uri.key.split("/")
        for segment in segments[:-1] if uri.key.endswith("/") else segments:
            if not segment:
                raise ValidationError(
                    f"The key of '{uri}' has an empty path segment ('//'); the embedded store "
                    "keeps keys as file paths, where it would name another key."
                )
            if len(segment.encode()) > _MAX_NAME_BYTES:
                raise ValidationError(
                    f"The key of '{uri}' has a path segment longer than {_MAX_NAME_BYTES} bytes, "
                    "which the embedded store cannot keep as a file name."
                )
            if segment == FOLDER_FILE:
                raise ValidationError(
                    f"The key of '{uri}' has a segment '{FOLDER_FILE}', which the embedded store "
                    "reserves for folder markers (keys ending in '/')."
                )
            if segment.startswith(PARTIAL_PREFIX):
                raise ValidationError(
                    f"The key of '{uri}' has a segment starting with '{PARTIAL_PREFIX}', which "
                    "the embedded store reserves for its temporary files."
                )

    def target_path(self, uri: ObjectUri) -> Path:
        """The object's path once its directories (and bucket) exist; fails for keys that
        clash with another object on disk."""
        if not uri.key or uri.key == "/":
            raise ValidationError(f"'{uri}' does not name an object.")
        self.validate_key(uri)
        path = self.path_for(uri)
        if path.is_dir():
            raise ValidationError(f"'{uri}' is a prefix of other objects; choose another key.")
        bucket_dir = self.root / uri.bucket
        if not bucket_dir.is_dir():
            with contextlib.suppress(FileExistsError):
                bucket_dir.mkdir()
                self.buckets.record(uri.bucket)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ValidationError(
                f"'{uri}' lies under a key that is already an object; choose another key."
            ) from None
        return path

    def temp_file_for(self, uri: ObjectUri, *, hashing: bool = True) -> TempFile:
        """A temporary file beside the object's path (see `target_path`)."""
        for _ in range(5):  # a concurrent delete may remove an empty parent we just made
            path = self.target_path(uri)
            try:
                return TempFile(path.parent, hashing=hashing)
            except FileNotFoundError:
                continue
        raise OSError(f"could not create a temporary file for {uri}")

    def install(self, uri: ObjectUri, temp: Path, record: Record) -> None:
        """Make a finished file the object: its record first, then the file by a rename."""
        for attempt in range(5):
            path = self.target_path(uri) if attempt else self.path_for(uri)
            with self.lock(uri.bucket, uri.key):
                self.sidecars.write(uri.bucket, uri.key, record)
                try:
                    os.replace(temp, path)
                    return
                except (IsADirectoryError, NotADirectoryError):
                    raise ValidationError(
                        f"'{uri}' is a prefix of other objects; choose another key."
                    ) from None
                except FileNotFoundError:
                    if not temp.exists():
                        raise
        raise OSError(f"could not install {uri}")

    def info(self, uri: ObjectUri, record: Record) -> ObjectInfo:
        identity = record.identity
        return ObjectInfo(
            uri,
            identity.size,
            identity.modified,
            record.etag,
            record.metadata,
            record.checksums,
            record.part_sizes,
        )

    def _describe(self, uri: ObjectUri, identity: FileIdentity) -> ObjectInfo:
        record = self.sidecars.read(uri.bucket, uri.key, identity)
        if record is None:
            record = Record(identity, identity.synthetic_etag())
        return self.info(uri, record)

    # Objects

    def stat(self, uri: ObjectUri) -> ObjectInfo | None:
        path = self.path_for(uri)
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not path.is_file() or not uri.key:
            return None
        return self._describe(uri, FileIdentity.of(stat))

    def open_read(self, uri: ObjectUri, start: int = 0, length: int | None = None) -> BinaryIO:
        path = self.path_for(uri)
        if not uri.key or not path.is_file():
            raise no_such_key(uri)
        handle = path.open("rb")
        handle.seek(start)
        if length is None:
            return handle
        return buffered(_window(handle, length), handle.close)

    def open_object(self, uri: ObjectUri) -> LocalObjectReader:
        path = self.path_for(uri)
        if not uri.key or not path.is_file():
            raise no_such_key(uri)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise no_such_key(uri) from None
        try:
            return LocalObjectReader(fd, self._describe(uri, FileIdentity.of(os.fstat(fd))))
        except BaseException:
            os.close(fd)
            raise

    def open_write(
        self, uri: ObjectUri, metadata: ObjectMetadata | None = None
    ) -> LocalObjectWriter:
        return LocalObjectWriter(self, uri, metadata)

    def open_assembly(self, uri: ObjectUri, metadata: ObjectMetadata) -> LocalObjectWriter:
        """A writer for joining parts: their ETags make the object's, so no hashing."""
        return LocalObjectWriter(self, uri, metadata, hashing=False)

    def copy(
        self, source: ObjectUri, target: ObjectUri, metadata: ObjectMetadata | None = None
    ) -> ObjectInfo:
        if source != target or metadata is None:
            return super().copy(source, target, metadata)
        reader = self.open_object(source)
        with contextlib.closing(reader):  # new metadata in place: no bytes move
            path = self.path_for(target)
            with self.lock(target.bucket, target.key):
                os.utime(path)
                identity = FileIdentity.of(path.stat())
                if identity.ino != os.fstat(reader.fd).st_ino:
                    raise ValidationError(f"'{target}' changed while it was being copied.")
                old = reader.info
                record = Record(identity, old.etag, metadata, old.checksums, old.part_sizes)
                self.sidecars.write(target.bucket, target.key, record)
        return self.info(target, record)

    def list(self, prefix: ObjectUri, start_after: str = "") -> Iterator[ObjectInfo]:
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
                if filename.startswith(PARTIAL_PREFIX) or full.is_symlink():
                    continue
                key = full.relative_to(bucket_dir).as_posix()
                if filename == FOLDER_FILE:
                    key = key.removesuffix(FOLDER_FILE)  # the folder marker `<dir>/`
                if key.startswith(prefix.key) and key > start_after:
                    found.append((key, full))
        for key, full in sorted(found):
            try:
                stat = full.stat()
            except FileNotFoundError:  # deleted since the walk
                continue
            yield self._describe(
                ObjectUri(prefix.scheme, prefix.bucket, key), FileIdentity.of(stat)
            )

    def delete(self, uri: ObjectUri) -> bool:
        path = self.path_for(uri)
        if not uri.key or not path.is_file():
            return False
        with self.lock(uri.bucket, uri.key):
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            self.sidecars.delete(uri.bucket, uri.key)
        self._prune(path.parent, self.root / uri.bucket)
        return True

    @staticmethod
    def _prune(directory: Path, bucket_dir: Path) -> None:
        """Remove directories emptied by a delete, so the key can later become an object."""
        while directory != bucket_dir and directory.is_relative_to(bucket_dir):
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    # Buckets

    def list_buckets(self) -> builtins.list[BucketInfo]:
        found = []
        for entry in sorted(self.root.iterdir()):
            if entry.is_dir() and valid_bucket(entry.name):
                found.append(BucketInfo(entry.name, self.buckets.created(entry.name, entry)))
        return found

    def bucket(self, name: str) -> BucketInfo | None:
        check_bucket(name)
        directory = self.root / name
        if not directory.is_dir():
            return None
        return BucketInfo(name, self.buckets.created(name, directory))

    def create_bucket(self, name: str) -> BucketInfo:
        check_bucket(name)
        try:
            (self.root / name).mkdir()
        except FileExistsError:
            raise BucketAlreadyOwnedByYouError(
                "Your previous request to create the named bucket succeeded and you already "
                "own it.",
                bucket=name,
            ) from None
        return BucketInfo(name, self.buckets.record(name))

    def delete_bucket(self, name: str) -> None:
        if self.bucket(name) is None:
            raise no_such_bucket(name)
        if next(self.list(ObjectUri("s3", name, "")), None) is not None:
            raise BucketNotEmptyError("The bucket you tried to delete is not empty.", bucket=name)
        directory = self.root / name
        if directory.is_symlink():  # a bucket kept elsewhere: forget it, keep the target
            directory.unlink()
        else:
            shutil.rmtree(directory)
        self.sidecars.drop_bucket(name)
        self.uploads.drop_bucket(name)
        self.buckets.drop(name)

    # Multipart uploads (see local_multipart.py)

    def create_multipart_upload(
        self,
        uri: ObjectUri,
        metadata: ObjectMetadata | None = None,
        checksum_algorithm: str | None = None,
    ) -> str:
        return self.uploads.create(uri, metadata or ObjectMetadata(), checksum_algorithm)

    def upload(self, uri: ObjectUri, upload_id: str) -> UploadInfo:
        return self.uploads.get(uri, upload_id)

    def open_part_write(
        self, uri: ObjectUri, upload_id: str, number: int, size: int | None = None
    ) -> Writer[PartInfo]:
        return self.uploads.open_part(uri, upload_id, number, size)

    def list_parts(self, uri: ObjectUri, upload_id: str) -> builtins.list[PartInfo]:
        return self.uploads.parts(uri, upload_id)

    def complete_multipart_upload(
        self,
        uri: ObjectUri,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        checksums: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        return self.uploads.complete(uri, upload_id, parts, checksums)

    def abort_multipart_upload(self, uri: ObjectUri, upload_id: str) -> None:
        self.uploads.abort(uri, upload_id)

    def list_multipart_uploads(self, bucket: str, prefix: str = "") -> builtins.list[UploadInfo]:
        return self.uploads.list(bucket, prefix)

    def abort_uploads_started_before(self, cutoff: float) -> int:
        return self.uploads.abort_started_before(cutoff)


def _window(handle: BinaryIO, length: int) -> Iterator[bytes]:
    while length > 0 and (chunk := handle.read(min(CHUNK, length))):
        length -= len(chunk)
        yield chunk
