"""Multipart uploads through the S3 gateway: boto3's managed transfers and the low-level
calls, including the refusals S3 makes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from support.server import SabioServer

MIB = 1024 * 1024
PART = os.urandom(5 * MIB)


def code(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = error.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_upload_and_download_a_50_mb_file(
    s3: Any, bucket: str, tmp_path: Path, server: SabioServer
) -> None:
    source = tmp_path / "big.bin"
    data = os.urandom(50 * MIB)
    source.write_bytes(data)
    s3.upload_file(str(source), bucket, "models/big.bin")  # 7 parts of 8 MiB, CRC32 each
    head = s3.head_object(Bucket=bucket, Key="models/big.bin", ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].endswith('-7"')
    assert head["ChecksumCRC32"].endswith("-7")
    target = tmp_path / "back.bin"
    s3.download_file(bucket, "models/big.bin", str(target))
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
    on_disk = server.home / "artifacts" / bucket / "models" / "big.bin"
    assert on_disk.read_bytes() == data  # the platform's view of s3://bucket/models/big.bin
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    third = s3.get_object(Bucket=bucket, Key="models/big.bin", PartNumber=3)
    assert third["Body"].read() == data[16 * MIB : 24 * MIB]
    assert third["PartsCount"] == 7


def test_parts_out_of_order_and_the_order_rule(s3: Any, bucket: str) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key="ooo", ContentType="x/y")["UploadId"]
    tail = b"the last part"
    e2 = s3.upload_part(Bucket=bucket, Key="ooo", UploadId=upload, PartNumber=2, Body=tail)["ETag"]
    e1 = s3.upload_part(Bucket=bucket, Key="ooo", UploadId=upload, PartNumber=1, Body=PART)["ETag"]
    listed = s3.list_parts(Bucket=bucket, Key="ooo", UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [
        (1, e1, len(PART)),
        (2, e2, len(tail)),
    ]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [upload]
    with pytest.raises(ClientError) as error:
        s3.head_object(Bucket=bucket, Key="ooo")
    assert code(error) == ("404", 404)  # nothing visible before completion

    backwards = {"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]}
    with pytest.raises(ClientError) as error:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="ooo", UploadId=upload, MultipartUpload=backwards
        )
    assert code(error) == ("InvalidPartOrder", 400)
    wrong = {"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e1}]}
    with pytest.raises(ClientError) as error:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="ooo", UploadId=upload, MultipartUpload=wrong
        )
    assert code(error) == ("InvalidPart", 400)

    parts = {"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]}
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="ooo", UploadId=upload, MultipartUpload=parts
    )
    digests = bytes.fromhex(e1.strip('"')) + bytes.fromhex(e2.strip('"'))
    assert done["ETag"] == f'"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-2"'
    got = s3.get_object(Bucket=bucket, Key="ooo")
    assert (got["Body"].read(), got["ContentType"]) == (PART + tail, "x/y")


def test_small_parts_and_unknown_uploads(s3: Any, bucket: str) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key="small")["UploadId"]
    etags = [
        s3.upload_part(Bucket=bucket, Key="small", UploadId=upload, PartNumber=n, Body=b"tiny")[
            "ETag"
        ]
        for n in (1, 2)
    ]
    parts = {"Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2), etags, strict=True)]}
    with pytest.raises(ClientError) as error:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="small", UploadId=upload, MultipartUpload=parts
        )
    assert code(error) == ("EntityTooSmall", 400)
    with pytest.raises(ClientError) as error:
        s3.upload_part(Bucket=bucket, Key="small", UploadId=upload, PartNumber=10001, Body=b"x")
    assert code(error) == ("InvalidArgument", 400)
    s3.abort_multipart_upload(Bucket=bucket, Key="small", UploadId=upload)
    for call in (
        lambda: s3.upload_part(
            Bucket=bucket, Key="small", UploadId=upload, PartNumber=1, Body=b"x"
        ),
        lambda: s3.list_parts(Bucket=bucket, Key="small", UploadId=upload),
        lambda: s3.abort_multipart_upload(Bucket=bucket, Key="small", UploadId=upload),
        lambda: s3.upload_part(
            Bucket=bucket, Key="small", UploadId="bogus", PartNumber=1, Body=b""
        ),
    ):
        with pytest.raises(ClientError) as error:
            call()
        assert code(error) == ("NoSuchUpload", 404)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_managed_copy_of_a_large_object_uses_upload_part_copy(s3: Any, bucket: str) -> None:
    data = os.urandom(12 * MIB)
    s3.put_object(Bucket=bucket, Key="source", Body=data, ContentType="application/x-model")
    s3.copy({"Bucket": bucket, "Key": "source"}, bucket, "copy")  # over 8 MiB: UploadPartCopy
    head = s3.head_object(Bucket=bucket, Key="copy")
    assert head["ETag"].endswith('-2"')
    assert s3.get_object(Bucket=bucket, Key="copy")["Body"].read() == data
    upload = s3.create_multipart_upload(Bucket=bucket, Key="ranged")["UploadId"]
    part = s3.upload_part_copy(
        Bucket=bucket,
        Key="ranged",
        UploadId=upload,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "source"},
        CopySourceRange="bytes=100-199",
    )
    assert (
        part["CopyPartResult"]["ETag"]
        == f'"{hashlib.md5(data[100:200], usedforsecurity=False).hexdigest()}"'
    )
    with pytest.raises(ClientError) as error:
        s3.upload_part_copy(
            Bucket=bucket,
            Key="ranged",
            UploadId=upload,
            PartNumber=2,
            CopySource={"Bucket": bucket, "Key": "source"},
            CopySourceRange=f"bytes=0-{len(data)}",
        )
    assert code(error) == ("InvalidArgument", 400)
