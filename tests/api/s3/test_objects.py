"""Objects through the S3 gateway with boto3: writes, reads, metadata, ranges, conditions,
copies, deletes and S3's errors."""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

import pytest
from botocore.exceptions import ClientError

from support.server import SabioServer


def code(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = error.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_put_get_head_with_metadata(s3: Any, bucket: str) -> None:
    put = s3.put_object(
        Bucket=bucket,
        Key="dir/report.csv",
        Body=b"a,b\n1,2\n",
        ContentType="text/csv",
        ContentDisposition='attachment; filename="report.csv"',
        CacheControl="max-age=60",
        ContentEncoding="identity",
        Metadata={"owner": "team-a", "Run-Id": "42"},
    )
    body_md5 = hashlib.md5(b"a,b\n1,2\n", usedforsecurity=False).hexdigest()
    assert put["ETag"] == f'"{body_md5}"'
    got = s3.get_object(Bucket=bucket, Key="dir/report.csv")
    assert got["Body"].read() == b"a,b\n1,2\n"
    assert (got["ContentType"], got["ContentLength"], got["ETag"]) == ("text/csv", 8, put["ETag"])
    assert got["ContentDisposition"] == 'attachment; filename="report.csv"'
    assert (got["CacheControl"], got["ContentEncoding"]) == ("max-age=60", "identity")
    assert got["Metadata"] == {"owner": "team-a", "run-id": "42"}
    head = s3.head_object(Bucket=bucket, Key="dir/report.csv")
    assert (head["ContentLength"], head["ETag"], head["AcceptRanges"]) == (8, put["ETag"], "bytes")
    assert abs(head["LastModified"] - datetime.datetime.now(datetime.UTC)).total_seconds() < 30


def test_default_content_type_and_empty_objects(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert (got["Body"].read(), got["ContentType"]) == (b"", "binary/octet-stream")


def test_crc32_is_kept_and_returned_when_asked(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"hello", ChecksumAlgorithm="CRC32")
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"hello"  # botocore validates the checksum while reading
    assert got["ChecksumCRC32"] == "NhCmhg=="
    s3.put_object(Bucket=bucket, Key="sha", Body=b"hello", ChecksumAlgorithm="SHA256")
    head = s3.head_object(Bucket=bucket, Key="sha", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="


def test_ranges(s3: Any, bucket: str) -> None:
    data = bytes(range(256)) * 40
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    for header, expected, content_range in [
        ("bytes=0-9", data[:10], "bytes 0-9/10240"),
        ("bytes=10240-", None, None),
        ("bytes=100-", data[100:], "bytes 100-10239/10240"),
        ("bytes=-5", data[-5:], "bytes 10235-10239/10240"),
        ("bytes=10000-99999", data[10000:], "bytes 10000-10239/10240"),
    ]:
        if expected is None:
            with pytest.raises(ClientError) as error:
                s3.get_object(Bucket=bucket, Key="r", Range=header)
            assert code(error) == ("InvalidRange", 416)
            continue
        got = s3.get_object(Bucket=bucket, Key="r", Range=header)
        assert (got["Body"].read(), got["ContentRange"]) == (expected, content_range)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    whole = s3.get_object(Bucket=bucket, Key="r", Range="items=0-1")  # ignored, as S3 does
    assert whole["Body"].read() == data


def test_conditional_gets(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"v1")["ETag"]
    modified = s3.head_object(Bucket=bucket, Key="c")["LastModified"]
    later = modified + datetime.timedelta(seconds=10)
    earlier = modified - datetime.timedelta(seconds=10)
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"v1"
    assert s3.get_object(Bucket=bucket, Key="c", IfNoneMatch='"other"')["Body"].read() == b"v1"
    assert s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=earlier)["Body"].read() == b"v1"
    assert s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=later)["Body"].read() == b"v1"
    for condition, expected in [
        ({"IfMatch": '"other"'}, ("PreconditionFailed", 412)),
        ({"IfUnmodifiedSince": earlier}, ("PreconditionFailed", 412)),
        ({"IfNoneMatch": etag}, ("304", 304)),
        ({"IfModifiedSince": later}, ("304", 304)),
    ]:
        with pytest.raises(ClientError) as error:
            s3.get_object(Bucket=bucket, Key="c", **condition)
        assert code(error) == expected
    # If-Match wins over If-Unmodified-Since, If-None-Match over If-Modified-Since (RFC 7232).
    got = s3.get_object(Bucket=bucket, Key="c", IfMatch=etag, IfUnmodifiedSince=earlier)
    assert got["Body"].read() == b"v1"
    with pytest.raises(ClientError) as error:
        s3.head_object(Bucket=bucket, Key="c", IfNoneMatch=etag, IfModifiedSince=earlier)
    assert code(error) == ("304", 304)


def test_put_if_none_match_refuses_to_overwrite(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="once", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as error:
        s3.put_object(Bucket=bucket, Key="once", Body=b"second", IfNoneMatch="*")
    assert code(error) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"first"


def test_copy_object_keeps_or_replaces_metadata(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"data", ContentType="a/b", Metadata={"k": "v"})
    result = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert (
        result["CopyObjectResult"]["ETag"]
        == f'"{hashlib.md5(b"data", usedforsecurity=False).hexdigest()}"'
    )
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert (got["Body"].read(), got["ContentType"], got["Metadata"]) == (b"data", "a/b", {"k": "v"})

    s3.copy_object(
        Bucket=bucket,
        Key="src",
        CopySource=f"{bucket}/src",
        MetadataDirective="REPLACE",
        ContentType="text/plain",
        Metadata={"new": "1"},
    )
    head = s3.head_object(Bucket=bucket, Key="src")
    assert (head["ContentType"], head["Metadata"]) == ("text/plain", {"new": "1"})

    with pytest.raises(ClientError) as error:  # onto itself without a change
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert code(error) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as error:
        s3.copy_object(
            Bucket=bucket,
            Key="x",
            CopySource={"Bucket": bucket, "Key": "src"},
            CopySourceIfMatch='"no"',
        )
    assert code(error) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as error:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "missing"})
    assert code(error) == ("NoSuchKey", 404)


def test_delete_and_delete_objects(s3: Any, bucket: str) -> None:
    for key in ("a", "b", "c/d"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    assert s3.delete_object(Bucket=bucket, Key="a")["ResponseMetadata"]["HTTPStatusCode"] == 204
    s3.delete_object(Bucket=bucket, Key="a")  # deleting again is not an error
    result = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "b"}, {"Key": "c/d"}, {"Key": "never-was"}, {"Key": "../up"}]},
    )
    assert sorted(d["Key"] for d in result["Deleted"]) == ["b", "c/d", "never-was"]
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("../up", "InvalidArgument")]
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    s3.put_object(Bucket=bucket, Key="q", Body=b"x")
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "q"}], "Quiet": True})
    assert "Deleted" not in quiet
    s3.put_object(Bucket=bucket, Key="c", Body=b"a key where a prefix was")


def test_object_exists_waiter(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="ready", Body=b"x")
    s3.get_waiter("object_exists").wait(Bucket=bucket, Key="ready", WaiterConfig={"Delay": 1})
    s3.get_waiter("object_not_exists").wait(Bucket=bucket, Key="gone", WaiterConfig={"Delay": 1})


def test_missing_keys_and_buckets(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as error:
        s3.get_object(Bucket=bucket, Key="nope")
    assert code(error) == ("NoSuchKey", 404)
    assert error.value.response["Error"]["Key"] == "nope"
    with pytest.raises(ClientError) as error:
        s3.head_object(Bucket=bucket, Key="nope")
    assert code(error) == ("404", 404)
    for call in (
        lambda: s3.get_object(Bucket="no-such-bucket-here", Key="k"),
        lambda: s3.put_object(Bucket="no-such-bucket-here", Key="k", Body=b"x"),
        lambda: s3.list_objects_v2(Bucket="no-such-bucket-here"),
        lambda: s3.delete_bucket(Bucket="no-such-bucket-here"),
    ):
        with pytest.raises(ClientError) as error:
            call()
        assert code(error) == ("NoSuchBucket", 404)


def test_keys_that_would_leave_the_bucket_are_refused(
    s3: Any, bucket: str, raw: Any, server: SabioServer
) -> None:
    for key in ("../escape", "a/../../escape", "./a", "a//b"):
        with pytest.raises(ClientError) as error:
            s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        assert code(error) == ("InvalidArgument", 400), key
    response = raw("PUT", f"/{bucket}/%2E%2E/%2E%2E/outside", b"x")
    assert response.status == 400
    assert b"<Code>InvalidArgument</Code>" in response.body
    assert b"must not contain '.' or '..' path segments" in response.body
    with pytest.raises(ClientError) as error:
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"x")
    assert code(error) == ("KeyTooLongError", 400)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert not (server.home / "artifacts" / "outside").exists()
    assert not (server.home / "artifacts" / "escape").exists()


def test_objects_and_prefixes_cannot_share_a_name(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="a", Body=b"x")
    with pytest.raises(ClientError) as error:
        s3.put_object(Bucket=bucket, Key="a/b", Body=b"x")
    assert code(error) == ("InvalidArgument", 400)
    assert "already an object" in error.value.response["Error"]["Message"]


def test_unsupported_operations_are_not_implemented(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as error:
        s3.get_object_tagging(Bucket=bucket, Key="k")
    assert code(error) == ("NotImplemented", 501)
    with pytest.raises(ClientError) as error:
        s3.get_bucket_policy(Bucket=bucket)
    assert code(error) == ("NotImplemented", 501)


def test_presigned_urls(s3: Any, bucket: str) -> None:
    import urllib.request

    s3.put_object(Bucket=bucket, Key="shared.txt", Body=b"shared")
    url = s3.generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": "shared.txt", "ResponseContentType": "text/x-shared"},
    )
    with urllib.request.urlopen(url) as response:
        assert (response.read(), response.headers["Content-Type"]) == (b"shared", "text/x-shared")
    upload = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "up.txt"})
    request = urllib.request.Request(upload, data=b"uploaded", method="PUT")
    with urllib.request.urlopen(request) as response:
        assert response.status == 200
    assert s3.get_object(Bucket=bucket, Key="up.txt")["Body"].read() == b"uploaded"


def test_customer_encryption_keys_are_refused(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as error:
        s3.put_object(
            Bucket=bucket,
            Key="k",
            Body=b"x",
            SSECustomerAlgorithm="AES256",
            SSECustomerKey="k" * 32,
        )
    assert code(error) == ("NotImplemented", 501)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="AES256")  # accepted
