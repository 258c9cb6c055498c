"""Streaming objects to and from an S3-compatible store: ranged reads, writes that become
multipart uploads as they grow, and parts spooled until their length is known."""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any

from sabio.artifacts.s3_errors import translate
from sabio.artifacts.store import (
    CHUNK,
    Chunk,
    ObjectInfo,
    ObjectMetadata,
    ObjectReader,
    PartInfo,
    Writer,
    normalize_etag,
)
from sabio.artifacts.uri import ObjectUri

if TYPE_CHECKING:
    from sabio.artifacts.s3 import S3ArtifactStore

PART_BYTES = 8 * 1024 * 1024
HEADERS = {
    "content_type": "ContentType",
    "content_disposition": "ContentDisposition",
    "content_encoding": "ContentEncoding",
    "content_language": "ContentLanguage",
    "cache_control": "CacheControl",
}


def metadata_args(metadata: ObjectMetadata | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    args: dict[str, Any] = {
        arg: getattr(metadata, name) for name, arg in HEADERS.items() if getattr(metadata, name)
    }
    if metadata.expires:
        args["Expires"] = metadata.expires
    if metadata.user:
        args["Metadata"] = dict(metadata.user)
    return args


def metadata_of(response: Mapping[str, Any]) -> ObjectMetadata:
    values = {name: response[arg] for name, arg in HEADERS.items() if response.get(arg)}
    expires = response.get("ExpiresString")
    return ObjectMetadata(
        **values,
        expires=expires or None,
        user={k.lower(): v for k, v in (response.get("Metadata") or {}).items()},
    )


class S3ObjectReader(ObjectReader):
    """Ranged GETs conditional on the ETag that was read first, so a replaced object fails
    the read (PreconditionFailed) instead of mixing two versions."""

    def __init__(self, store: S3ArtifactStore, info: ObjectInfo) -> None:
        self.store = store
        self.info = info

    def chunks(self, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        end = self.info.size if stop is None else min(stop, self.info.size)
        if start >= end:
            return
        uri = self.info.uri
        try:
            response = self.store.client.get_object(
                Bucket=uri.bucket,
                Key=uri.key,
                Range=f"bytes={start}-{end - 1}",
                IfMatch=f'"{self.info.etag}"',
            )
        except Exception as error:
            raise translate(error, uri) from error
        body = response["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def close(self) -> None:
        pass


class S3ObjectWriter(Writer[ObjectInfo]):
    """Buffers up to one part; a larger object becomes a multipart upload as it streams."""

    def __init__(self, store: S3ArtifactStore, uri: ObjectUri, metadata: ObjectMetadata | None):
        self.store = store
        self.uri = uri
        self.metadata = metadata
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[tuple[int, str]] = []
        self._done = False

    def write(self, data: Chunk) -> None:
        self.buffer += data
        while len(self.buffer) >= self.store.part_bytes:
            self._flush(self.store.part_bytes)

    def _flush(self, size: int) -> None:
        client, uri = self.store.client, self.uri
        if self.upload_id is None:
            self.upload_id = client.create_multipart_upload(
                Bucket=uri.bucket, Key=uri.key, **metadata_args(self.metadata)
            )["UploadId"]
        number = len(self.parts) + 1
        body = bytes(self.buffer[:size])
        del self.buffer[:size]
        response = client.upload_part(
            Bucket=uri.bucket, Key=uri.key, UploadId=self.upload_id, PartNumber=number, Body=body
        )
        self.parts.append((number, response["ETag"]))

    def commit(self, checksums: Mapping[str, str] | None = None) -> ObjectInfo:
        client, uri = self.store.client, self.uri
        try:
            if self.upload_id is None:
                client.put_object(
                    Bucket=uri.bucket,
                    Key=uri.key,
                    Body=bytes(self.buffer),
                    **metadata_args(self.metadata),
                )
            else:
                if self.buffer or not self.parts:
                    self._flush(len(self.buffer))
                client.complete_multipart_upload(
                    Bucket=uri.bucket,
                    Key=uri.key,
                    UploadId=self.upload_id,
                    MultipartUpload={
                        "Parts": [{"PartNumber": n, "ETag": e} for n, e in self.parts]
                    },
                )
        except Exception as error:
            self.abort()
            raise translate(error, uri) from error
        self._done = True
        return self.store.require(uri)

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self.buffer.clear()
        if self.upload_id is not None:
            self.store.abort_quietly(self.uri, self.upload_id)


class S3PartWriter(Writer[PartInfo]):
    """A part is spooled (to memory, then disk) because UploadPart needs its length up front."""

    def __init__(self, store: S3ArtifactStore, uri: ObjectUri, upload_id: str, number: int):
        self.store, self.uri, self.upload_id, self.number = store, uri, upload_id, number
        self.spool: IO[bytes] | None = None
        self.size = 0

    def write(self, data: Chunk) -> None:
        if self.spool is None:
            self.spool = tempfile.SpooledTemporaryFile(max_size=PART_BYTES)  # noqa: SIM115
        self.spool.write(data)
        self.size += len(data)

    def commit(self, checksums: Mapping[str, str] | None = None) -> PartInfo:
        uri = self.uri
        body = self.spool if self.spool is not None else io.BytesIO()
        try:
            body.seek(0)
            response = self.store.client.upload_part(
                Bucket=uri.bucket,
                Key=uri.key,
                UploadId=self.upload_id,
                PartNumber=self.number,
                Body=body,
                ContentLength=self.size,
            )
        except Exception as error:
            raise translate(error, uri, upload_id=self.upload_id) from error
        finally:
            self.abort()
        return PartInfo(self.number, normalize_etag(response["ETag"]), self.size, time.time())

    def abort(self) -> None:
        if self.spool is not None:
            self.spool.close()
            self.spool = None
