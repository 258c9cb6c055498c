"""Multipart uploads in the embedded store.

An upload is a directory `<root>/.sabio/uploads/<bucket>/<upload-id>/`: `upload.json` (key,
metadata, start time), one record `<n>.json` per part, and the parts' bytes. Clients send all
parts but the last at one size, so part n goes straight to offset (n-1)*size of one sparse
file, `data`, the size being the one the first part declared; a part that does not fit that
pattern gets a file of its own, `<n>.part`. Completing a regular upload is then a truncate, an
fsync and a rename, with no byte copied; any other is joined by copying into a hidden file
beside the object. Either way the object appears whole or not at all.

Parts are not fsynced (the object is, on completion). Each part's record names the boot it was
written in: after a reboot, a part written before it is checked against its MD5 before it can
become part of an object."""

from __future__ import annotations

import builtins
import hashlib
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sabio.artifacts.errors import EntityTooSmallError, InvalidPartError, no_such_upload
from sabio.artifacts.local_metadata import (
    STATE_DIR,
    FileIdentity,
    Record,
    boot_id,
    decode_metadata,
    encode_metadata,
    read_json,
    write_json,
)
from sabio.artifacts.local_parts import DATA, OPEN_FLAGS, LocalPartWriter, PartRecord
from sabio.artifacts.store import (
    CHUNK,
    MAX_PARTS,
    MIN_PART_BYTES,
    ObjectInfo,
    ObjectMetadata,
    PartInfo,
    UploadInfo,
    check_part_list,
    multipart_etag,
    normalize_etag,
)
from sabio.artifacts.uri import ObjectUri, check_bucket
from sabio.errors import ValidationError

if TYPE_CHECKING:
    from sabio.artifacts.local import LocalArtifactStore

_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_STRIDE = "stride"


class LocalUploads:
    def __init__(self, store: LocalArtifactStore) -> None:
        self.store = store
        self.dir = store.root / STATE_DIR / "uploads"
        # Apart from the store's object locks, which are taken inside these (never the
        # other way round), so no two threads can wait for each other.
        self._locks = [threading.Lock() for _ in range(64)]

    def lock(self, *names: str) -> threading.Lock:
        return self._locks[hash(names) % len(self._locks)]

    def _directory(self, uri: ObjectUri, upload_id: str) -> tuple[Path, UploadInfo]:
        """The upload's directory and description; NoSuchUpload unless it is this key's."""
        if not _UPLOAD_ID.match(upload_id):
            raise no_such_upload(upload_id)
        directory = self.dir / uri.bucket / upload_id
        data = read_json(directory / "upload.json")
        if data is None or data.get("key") != uri.key:
            raise no_such_upload(upload_id)
        return directory, _upload_info(uri, upload_id, data)

    def create(
        self, uri: ObjectUri, metadata: ObjectMetadata, checksum_algorithm: str | None
    ) -> str:
        if not uri.key or uri.key == "/":
            raise ValidationError(f"'{uri}' does not name an object.")
        self.store.validate_key(uri)
        self.store.path_for(uri)  # refuses keys that resolve outside the bucket
        upload_id = secrets.token_hex(16)
        directory = self.dir / uri.bucket / upload_id
        directory.mkdir(parents=True)
        description = {
            "key": uri.key,
            "initiated": time.time(),
            "metadata": encode_metadata(metadata),
            "checksum_algorithm": checksum_algorithm,
        }
        write_json(directory / "upload.json", description)
        return upload_id

    def get(self, uri: ObjectUri, upload_id: str) -> UploadInfo:
        return self._directory(uri, upload_id)[1]

    def stride(self, directory: Path, size: int) -> int:
        """The part size of this upload: the size the first part declared."""
        path = directory / _STRIDE
        try:
            fd = os.open(path, OPEN_FLAGS | os.O_EXCL, 0o644)
        except FileExistsError:
            text = path.read_text()
            return int(text) if text.isdigit() else 0  # 0 while the first is being written
        with os.fdopen(fd, "w") as handle:
            handle.write(str(size))
        return size

    def open_part(
        self, uri: ObjectUri, upload_id: str, number: int, size: int | None
    ) -> LocalPartWriter:
        if not 1 <= number <= MAX_PARTS:
            raise ValidationError(
                f"Part number must be an integer between 1 and {MAX_PARTS}, inclusive."
            )
        directory, _ = self._directory(uri, upload_id)
        try:
            return LocalPartWriter(self, directory, number, size)
        except FileNotFoundError:
            raise no_such_upload(upload_id) from None

    def save_part(self, directory: Path, record: PartRecord, file: Path | None) -> None:
        """Record a finished part (and move its own file into place)."""
        with self.lock(str(directory), str(record.number)):
            if not (directory / "upload.json").is_file():
                raise no_such_upload(directory.name)
            write_json(directory / f"{record.number}.json", record.encode(), mkdir=False)
            own = directory / f"{record.number}.part"
            if file is not None:
                os.replace(file, own)
            else:
                own.unlink(missing_ok=True)

    def _record(self, directory: Path, number: int) -> PartRecord | None:
        data = read_json(directory / f"{number}.json")
        if data is None:
            return None
        try:
            record = PartRecord.decode(number, data)
        except (KeyError, TypeError, ValueError):
            return None
        if record.offset is None:
            try:
                identity = FileIdentity.of((directory / f"{number}.part").stat())
            except FileNotFoundError:
                return None
            if identity != record.identity:
                return None
        return record

    def parts(self, uri: ObjectUri, upload_id: str) -> builtins.list[PartInfo]:
        directory, _ = self._directory(uri, upload_id)
        numbers = sorted(int(p.stem) for p in directory.glob("*.json") if p.stem.isdigit())
        records = (self._record(directory, number) for number in numbers)
        return [record.info() for record in records if record is not None]

    def complete(
        self,
        uri: ObjectUri,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        checksums: Mapping[str, str] | None,
    ) -> ObjectInfo:
        directory, upload = self._directory(uri, upload_id)
        check_part_list(parts)
        with self.lock(upload_id):
            records: list[PartRecord] = []
            for number, etag in parts:
                record = self._record(directory, number)
                if record is None or record.etag != normalize_etag(etag):
                    raise _invalid_part(number)
                records.append(record)
            for record in records[:-1]:
                if record.size < MIN_PART_BYTES:
                    raise EntityTooSmallError(
                        "Your proposed upload is smaller than the minimum allowed object size.",
                        part_number=record.number,
                        proposed_size=record.size,
                        min_size_allowed=MIN_PART_BYTES,
                    )
            self._check_after_reboot(directory, records)
            etag = multipart_etag([record.etag for record in records])
            whole = Record(
                FileIdentity(0, 0, 0),
                etag,
                upload.metadata,
                dict(checksums or {}),
                tuple(r.size for r in records),
            )
            info = self._join_in_place(uri, directory, records, whole)
            if info is None:
                info = self._join_by_copy(uri, directory, records, whole)
            shutil.rmtree(directory, ignore_errors=True)
        return info

    def _check_after_reboot(self, directory: Path, records: list[PartRecord]) -> None:
        current = boot_id()
        for record in records:
            if record.boot is None or record.boot == current:
                continue
            digest = hashlib.md5(usedforsecurity=False)
            with _source(directory, record).open("rb") as handle:
                handle.seek(record.offset or 0)
                remaining = record.size
                while remaining and (chunk := handle.read(min(CHUNK, remaining))):
                    digest.update(chunk)
                    remaining -= len(chunk)
            if remaining or digest.hexdigest() != record.etag:
                raise _invalid_part(record.number)

    def _join_in_place(
        self, uri: ObjectUri, directory: Path, records: list[PartRecord], whole: Record
    ) -> ObjectInfo | None:
        """Parts 1..N all in `data` at their natural offsets: `data` is the object."""
        stride = records[0].size
        regular = all(
            record.number == index + 1
            and record.offset == index * stride
            and (record.size == stride or index == len(records) - 1)
            for index, record in enumerate(records)
        )
        if not regular:
            return None
        self.store.target_path(uri)  # refuses a clashing key before `data` is changed
        data = directory / DATA
        fd = os.open(data, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        try:
            os.ftruncate(fd, sum(record.size for record in records))
            os.fsync(fd)
            identity = FileIdentity.of(os.fstat(fd))
        finally:
            os.close(fd)
        record = Record(identity, whole.etag, whole.metadata, whole.checksums, whole.part_sizes)
        try:
            self.store.install(uri, data, record)
        except OSError as error:
            if error.errno == getattr(os, "EXDEV", 18):  # the bucket lives on another disk
                return None
            raise
        return self.store.info(uri, record)

    def _join_by_copy(
        self, uri: ObjectUri, directory: Path, records: list[PartRecord], whole: Record
    ) -> ObjectInfo:
        writer = self.store.open_assembly(uri, whole.metadata)
        try:
            for record in records:
                writer.temp.append_range(
                    _source(directory, record), record.offset or 0, record.size
                )
        except BaseException:
            writer.abort()
            raise
        return writer.commit_as(whole.etag, whole.checksums, whole.part_sizes)

    def abort(self, uri: ObjectUri, upload_id: str) -> None:
        directory, _ = self._directory(uri, upload_id)
        with self.lock(upload_id):
            shutil.rmtree(directory, ignore_errors=True)

    def list(self, bucket: str, prefix: str = "") -> builtins.list[UploadInfo]:
        check_bucket(bucket)
        base = self.dir / bucket
        if not base.is_dir():
            return []
        found = []
        for directory in base.iterdir():
            data = read_json(directory / "upload.json")
            if data is None or not str(data.get("key", "")).startswith(prefix):
                continue
            uri = ObjectUri("s3", bucket, str(data["key"]))
            found.append(_upload_info(uri, directory.name, data))
        return sorted(found, key=lambda u: (u.uri.key, u.initiated))

    def abort_started_before(self, cutoff: float) -> int:
        """Remove the uploads initiated before `cutoff`, in every bucket."""
        if not self.dir.is_dir():
            return 0
        aborted = 0
        for base in self.dir.iterdir():
            for directory in base.iterdir() if base.is_dir() else ():
                data = read_json(directory / "upload.json")
                initiated = data.get("initiated") if data is not None else None
                if not isinstance(initiated, int | float):  # left by a crash while creating
                    initiated = directory.stat().st_mtime
                if initiated >= cutoff:
                    continue
                with self.lock(directory.name):
                    shutil.rmtree(directory, ignore_errors=True)
                aborted += 1
        return aborted

    def drop_bucket(self, bucket: str) -> None:
        shutil.rmtree(self.dir / bucket, ignore_errors=True)


def _source(directory: Path, record: PartRecord) -> Path:
    return directory / (DATA if record.offset is not None else f"{record.number}.part")


def _invalid_part(number: int) -> InvalidPartError:
    return InvalidPartError(
        "One or more of the specified parts could not be found. The part may not have been "
        "uploaded, or the specified entity tag may not match the part's entity tag.",
        part_number=number,
    )


def _upload_info(uri: ObjectUri, upload_id: str, data: Mapping[str, object]) -> UploadInfo:
    metadata = data.get("metadata")
    algorithm = data.get("checksum_algorithm")
    initiated = data.get("initiated")
    return UploadInfo(
        uri,
        upload_id,
        float(initiated) if isinstance(initiated, int | float) else 0.0,
        decode_metadata(metadata if isinstance(metadata, dict) else {}),
        str(algorithm) if algorithm else None,
    )
