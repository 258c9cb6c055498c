"""What the embedded store keeps beside its files: object metadata and bucket records.

They live under `<root>/.sabio/`, a name no bucket can have, so they never show in a listing and
never collide with a key. An object's record names the file it describes by inode, size and
modification time: a file replaced or edited by other means no longer matches its record, and
the record is ignored rather than believed."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sabio.artifacts.store import ObjectMetadata

STATE_DIR = ".sabio"
PARTIAL_PREFIX = ".sabio-partial-"
FOLDER_FILE = ".sabio-folder"  # holds the object `<dir>/` inside the directory `<dir>`
_METADATA_FIELDS = (
    "content_type",
    "content_disposition",
    "content_encoding",
    "content_language",
    "cache_control",
    "expires",
)


@dataclass(frozen=True)
class FileIdentity:
    """Which version of a file a record describes (a rename keeps all three)."""

    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, stat: os.stat_result) -> FileIdentity:
        return cls(stat.st_ino, stat.st_size, stat.st_mtime_ns)

    @property
    def modified(self) -> float:
        return self.mtime_ns / 1e9

    def synthetic_etag(self) -> str:
        """The ETag of a file that came without a record (copied in by hand): stable while the
        file is unchanged, different after any edit; not the MD5 of the content."""
        text = f"{self.ino}-{self.size}-{self.mtime_ns}".encode()
        return hashlib.md5(text, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Record:
    identity: FileIdentity
    etag: str
    metadata: ObjectMetadata = field(default_factory=ObjectMetadata)
    checksums: Mapping[str, str] = field(default_factory=dict)
    part_sizes: tuple[int, ...] = ()


@functools.cache
def boot_id() -> str | None:
    """This boot of the machine (Linux); files written without fsync since an earlier boot may
    have lost their bytes."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def encode_metadata(metadata: ObjectMetadata) -> dict[str, Any]:
    encoded: dict[str, Any] = {
        name: getattr(metadata, name) for name in _METADATA_FIELDS if getattr(metadata, name)
    }
    if metadata.user:
        encoded["user"] = dict(metadata.user)
    return encoded


def decode_metadata(data: Mapping[str, Any]) -> ObjectMetadata:
    values = {name: str(data[name]) for name in _METADATA_FIELDS if data.get(name)}
    user = data.get("user") or {}
    return ObjectMetadata(**values, user={str(k): str(v) for k, v in user.items()})


def encode_record(record: Record) -> dict[str, Any]:
    return {
        "ino": record.identity.ino,
        "size": record.identity.size,
        "mtime_ns": record.identity.mtime_ns,
        "etag": record.etag,
        "metadata": encode_metadata(record.metadata),
        "checksums": dict(record.checksums),
        "part_sizes": list(record.part_sizes),
    }


def decode_record(data: Mapping[str, Any]) -> Record:
    identity = FileIdentity(int(data["ino"]), int(data["size"]), int(data["mtime_ns"]))
    return Record(
        identity=identity,
        etag=str(data["etag"]),
        metadata=decode_metadata(data.get("metadata") or {}),
        checksums={str(k): str(v) for k, v in (data.get("checksums") or {}).items()},
        part_sizes=tuple(int(s) for s in data.get("part_sizes") or ()),
    )


def write_json(path: Path, data: Mapping[str, Any], *, mkdir: bool = True) -> None:
    """Replace a small JSON file atomically (not fsynced: a torn record fails to parse and is
    ignored, which is safe because every record is checked against its file)."""
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, separators=(",", ":"))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_record(path: Path, identity: FileIdentity) -> Record | None:
    """The record at `path` if it describes exactly this file."""
    data = read_json(path)
    if data is None:
        return None
    try:
        record = decode_record(data)
    except (KeyError, TypeError, ValueError):
        return None
    return record if record.identity == identity else None


class Sidecars:
    """Object records, one small JSON file per key, named by a hash of the key so that any
    key up to S3's 1024 bytes fits in a file name."""

    def __init__(self, root: Path) -> None:
        self.dir = root / STATE_DIR / "objects"

    def path(self, bucket: str, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.dir / bucket / digest[:2] / f"{digest}.json"

    def read(self, bucket: str, key: str, identity: FileIdentity) -> Record | None:
        return read_record(self.path(bucket, key), identity)

    def write(self, bucket: str, key: str, record: Record) -> None:
        write_json(self.path(bucket, key), encode_record(record))

    def delete(self, bucket: str, key: str) -> None:
        self.path(bucket, key).unlink(missing_ok=True)

    def drop_bucket(self, bucket: str) -> None:
        shutil.rmtree(self.dir / bucket, ignore_errors=True)


class BucketRecords:
    """When each bucket was created; a bucket directory made by other means has no record and
    reports its directory's modification time."""

    def __init__(self, root: Path) -> None:
        self.dir = root / STATE_DIR / "buckets"

    def created(self, name: str, directory: Path) -> float:
        data = read_json(self.dir / f"{name}.json")
        if data is not None and isinstance(data.get("created"), int | float):
            return float(data["created"])
        return directory.stat().st_mtime

    def record(self, name: str) -> float:
        created = time.time()
        write_json(self.dir / f"{name}.json", {"created": created})
        return created

    def drop(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / f"{name}.json").unlink()
