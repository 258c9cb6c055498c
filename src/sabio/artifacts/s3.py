"""An S3-compatible artifact backend (AWS S3, MinIO, Ceph, ...) through boto3.

Teams point Sabio at the store their users already write to; `s3://bucket/key` then means
exactly what it means to every other S3 client. Credentials come from the settings (as
`SecretStr`, never logged) or, when unset, from boto3's usual chain (instance roles etc.)."""

from __future__ import annotations

import builtins
import contextlib
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

import boto3
from botocore.config import Config
from pydantic import SecretStr

from sabio.artifacts.errors import BucketAlreadyOwnedByYouError, no_such_key, no_such_upload
from sabio.artifacts.s3_errors import is_missing, translate
from sabio.artifacts.s3_streams import (
    PART_BYTES,
    S3ObjectReader,
    S3ObjectWriter,
    S3PartWriter,
    metadata_args,
    metadata_of,
)
from sabio.artifacts.store import (
    ArtifactStore,
    BucketInfo,
    ObjectInfo,
    ObjectMetadata,
    ObjectReader,
    PartInfo,
    UploadInfo,
    Writer,
    check_part_list,
    normalize_etag,
)
from sabio.artifacts.streams import buffered
from sabio.artifacts.uri import ObjectUri, check_bucket
from sabio.errors import ValidationError

_COPY_LIMIT = 5 * 1024**3  # CopyObject's limit; larger objects are copied in parts
_CHECKSUMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")


@dataclass(frozen=True)
class S3Connection:
    endpoint_url: str
    region: str
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    addressing_style: Literal["path", "virtual", "auto"] = "auto"

    def client(self) -> Any:
        session = boto3.session.Session()
        return session.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=_reveal(self.access_key_id),
            aws_secret_access_key=_reveal(self.secret_access_key),
            config=Config(
                s3={"addressing_style": self.addressing_style},
                retries={"mode": "standard", "max_attempts": 3},
                max_pool_connections=32,
            ),
        )


def _reveal(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


class S3ArtifactStore(ArtifactStore):
    def __init__(self, connection: S3Connection, *, part_bytes: int = PART_BYTES) -> None:
        self.connection = connection
        self.part_bytes = part_bytes
        self._client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3ArtifactStore({self.connection.endpoint_url!r})"

    @property
    def client(self) -> Any:
        """Built on first use: constructing the store never touches the network."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self.connection.client()
        return self._client

    def _call(self, method: str, uri: ObjectUri | None = None, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(**kwargs)
        except Exception as error:
            raise translate(
                error, uri, bucket=kwargs.get("Bucket"), upload_id=kwargs.get("UploadId")
            ) from error

    # Objects

    def stat(self, uri: ObjectUri) -> ObjectInfo | None:
        self.validate_key(uri)
        if not uri.key:
            return None
        try:
            response = self.client.head_object(
                Bucket=uri.bucket, Key=uri.key, ChecksumMode="ENABLED"
            )
        except Exception as error:
            if is_missing(error):
                return None
            raise translate(error, uri) from error
        checksums = {
            a: response[f"Checksum{a}"] for a in _CHECKSUMS if response.get(f"Checksum{a}")
        }
        return ObjectInfo(
            uri,
            int(response["ContentLength"]),
            response["LastModified"].timestamp(),
            normalize_etag(response["ETag"]),
            metadata_of(response),
            checksums,
        )

    def require(self, uri: ObjectUri) -> ObjectInfo:
        info = self.stat(uri)
        if info is None:
            raise no_such_key(uri)
        return info

    def open_read(self, uri: ObjectUri, start: int = 0, length: int | None = None) -> BinaryIO:
        info = self.require(uri)
        reader = S3ObjectReader(self, info)
        return buffered(
            reader.chunks(start, None if length is None else start + length), reader.close
        )

    def open_object(self, uri: ObjectUri) -> ObjectReader:
        return S3ObjectReader(self, self.require(uri))

    def open_write(
        self, uri: ObjectUri, metadata: ObjectMetadata | None = None
    ) -> Writer[ObjectInfo]:
        self.validate_key(uri)
        if not uri.key:
            raise ValidationError(f"'{uri}' does not name an object.")
        return S3ObjectWriter(self, uri, metadata)

    def copy(
        self, source: ObjectUri, target: ObjectUri, metadata: ObjectMetadata | None = None
    ) -> ObjectInfo:
        self.validate_key(target)
        info = self.require(source)
        if metadata is None and source == target:
            metadata = info.metadata  # S3 refuses a copy onto itself that changes nothing
        args = {"MetadataDirective": "REPLACE", **metadata_args(metadata)} if metadata else {}
        copy_source = {"Bucket": source.bucket, "Key": source.key}
        if info.size <= _COPY_LIMIT:
            self._call(
                "copy_object",
                target,
                Bucket=target.bucket,
                Key=target.key,
                CopySource=copy_source,
                **args,
            )
        else:
            self._call(
                "copy",
                target,
                CopySource=copy_source,
                Bucket=target.bucket,
                Key=target.key,
                ExtraArgs=args,
            )
        return self.require(target)

    def list(self, prefix: ObjectUri, start_after: str = "") -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        args: dict[str, Any] = {"Bucket": prefix.bucket, "Prefix": prefix.key}
        if start_after:
            args["StartAfter"] = start_after
        try:
            for page in paginator.paginate(**args):
                for item in page.get("Contents", ()):
                    yield ObjectInfo(
                        ObjectUri(prefix.scheme, prefix.bucket, item["Key"]),
                        int(item["Size"]),
                        item["LastModified"].timestamp(),
                        normalize_etag(item.get("ETag", "")),
                    )
        except Exception as error:
            if is_missing(error):  # a missing bucket lists nothing, as on disk
                return
            raise translate(error, prefix) from error

    def delete(self, uri: ObjectUri) -> bool:
        if self.stat(uri) is None:
            return False
        self._call("delete_object", uri, Bucket=uri.bucket, Key=uri.key)
        return True

    # Buckets

    def list_buckets(self) -> builtins.list[BucketInfo]:
        response = self._call("list_buckets")
        found = [
            BucketInfo(b["Name"], b["CreationDate"].timestamp())
            for b in response.get("Buckets", ())
        ]
        return sorted(found, key=lambda b: b.name)

    def bucket(self, name: str) -> BucketInfo | None:
        check_bucket(name)
        try:
            self.client.head_bucket(Bucket=name)
        except Exception as error:
            if is_missing(error):
                return None
            raise translate(error, bucket=name) from error
        for found in self.list_buckets():
            if found.name == name:
                return found
        return BucketInfo(name, 0.0)  # visible to us, but owned by another account

    def create_bucket(self, name: str) -> BucketInfo:
        if self.bucket(name) is not None:  # us-east-1 would answer 200 and change nothing
            raise BucketAlreadyOwnedByYouError(
                "Your previous request to create the named bucket succeeded and you already "
                "own it.",
                bucket=name,
            )
        args: dict[str, Any] = {"Bucket": name}
        if self.connection.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.connection.region}
        self._call("create_bucket", **args)
        created = self.bucket(name)
        return created or BucketInfo(name, time.time())

    def delete_bucket(self, name: str) -> None:
        check_bucket(name)
        for upload in self.list_multipart_uploads(name):
            self.abort_quietly(upload.uri, upload.upload_id)
        self._call("delete_bucket", Bucket=name)

    # Multipart uploads

    def create_multipart_upload(
        self,
        uri: ObjectUri,
        metadata: ObjectMetadata | None = None,
        checksum_algorithm: str | None = None,
    ) -> str:
        self.validate_key(uri)
        if not uri.key:
            raise ValidationError(f"'{uri}' does not name an object.")
        response = self._call(
            "create_multipart_upload",
            uri,
            Bucket=uri.bucket,
            Key=uri.key,
            **metadata_args(metadata),
        )
        return str(response["UploadId"])

    def upload(self, uri: ObjectUri, upload_id: str) -> UploadInfo:
        # Listed rather than probed with ListParts, which not every S3-compatible store
        # checks against the key.
        for upload in self.list_multipart_uploads(uri.bucket, uri.key):
            if upload.uri.key == uri.key and upload.upload_id == upload_id:
                return upload
        raise no_such_upload(upload_id)

    def open_part_write(
        self, uri: ObjectUri, upload_id: str, number: int, size: int | None = None
    ) -> Writer[PartInfo]:
        self.upload(uri, upload_id)
        return S3PartWriter(self, uri, upload_id, number)

    def list_parts(self, uri: ObjectUri, upload_id: str) -> builtins.list[PartInfo]:
        paginator = self.client.get_paginator("list_parts")
        found = []
        try:
            for page in paginator.paginate(Bucket=uri.bucket, Key=uri.key, UploadId=upload_id):
                for part in page.get("Parts", ()):
                    found.append(
                        PartInfo(
                            int(part["PartNumber"]),
                            normalize_etag(part["ETag"]),
                            int(part["Size"]),
                            part["LastModified"].timestamp(),
                        )
                    )
        except Exception as error:
            raise translate(error, uri, upload_id=upload_id) from error
        return found

    def complete_multipart_upload(
        self,
        uri: ObjectUri,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        checksums: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        check_part_list(parts)
        self.upload(uri, upload_id)  # some S3-compatible stores answer 500 for an unknown id
        listed = [{"PartNumber": n, "ETag": f'"{normalize_etag(e)}"'} for n, e in parts]
        self._call(
            "complete_multipart_upload",
            uri,
            Bucket=uri.bucket,
            Key=uri.key,
            UploadId=upload_id,
            MultipartUpload={"Parts": listed},
        )
        return self.require(uri)

    def abort_multipart_upload(self, uri: ObjectUri, upload_id: str) -> None:
        self.upload(
            uri, upload_id
        )  # S3 answers 204 for unknown ids; the contract says NoSuchUpload
        self._call(
            "abort_multipart_upload", uri, Bucket=uri.bucket, Key=uri.key, UploadId=upload_id
        )

    def abort_quietly(self, uri: ObjectUri, upload_id: str) -> None:
        with contextlib.suppress(Exception):  # best effort; lifecycle rules clean up the rest
            self.client.abort_multipart_upload(Bucket=uri.bucket, Key=uri.key, UploadId=upload_id)

    def list_multipart_uploads(self, bucket: str, prefix: str = "") -> builtins.list[UploadInfo]:
        paginator = self.client.get_paginator("list_multipart_uploads")
        found = []
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for upload in page.get("Uploads", ()):
                    found.append(
                        UploadInfo(
                            ObjectUri("s3", bucket, upload["Key"]),
                            upload["UploadId"],
                            upload["Initiated"].timestamp(),
                            ObjectMetadata(),
                            upload.get("ChecksumAlgorithm"),
                        )
                    )
        except Exception as error:
            raise translate(error, bucket=bucket) from error
        return sorted(found, key=lambda u: (u.uri.key, u.initiated))
