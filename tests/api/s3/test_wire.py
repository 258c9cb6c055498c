"""What boto3 does not send over plain HTTP, sent raw: aws-chunked bodies with trailing
checksums, integrity headers that do not match, an upload cut short, and malformed requests."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
import zlib
from typing import Any

import google_crc32c

from support.server import SabioServer


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def crc32(data: bytes) -> str:
    return b64(zlib.crc32(data).to_bytes(4, "big"))


def crc32c(data: bytes) -> str:
    return b64(google_crc32c.value(data).to_bytes(4, "big"))


def chunked(data: bytes, size: int, trailers: dict[str, str], signed: bool = False) -> bytes:
    """The aws-chunked framing of `data`, as SigV4 streaming uploads send it."""
    signature = ";chunk-signature=" + "0" * 64 if signed else ""
    out = b""
    for start in range(0, len(data), size):
        chunk = data[start : start + size]
        out += f"{len(chunk):x}{signature}\r\n".encode() + chunk + b"\r\n"
    out += f"0{signature}\r\n".encode()
    out += b"".join(f"{k}:{v}\r\n".encode() for k, v in trailers.items())
    return out + b"\r\n"


def test_aws_chunked_upload_with_a_trailing_checksum(raw: Any, s3: Any, bucket: str) -> None:
    data = b"streamed " * 20000
    body = chunked(data, 65536, {"x-amz-checksum-crc32": crc32(data)})
    response = raw(
        "PUT",
        f"/{bucket}/chunked",
        body,
        {
            "Content-Encoding": "aws-chunked",
            "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "x-amz-decoded-content-length": str(len(data)),
            "x-amz-trailer": "x-amz-checksum-crc32",
            "x-amz-sdk-checksum-algorithm": "CRC32",
        },
    )
    assert response.status == 200, response.body
    assert response.headers["etag"] == f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="chunked", ChecksumMode="ENABLED")
    assert (got["Body"].read(), got["ChecksumCRC32"]) == (data, crc32(data))
    assert "aws-chunked" not in got.get("ContentEncoding", "")


def test_signed_streaming_upload(raw: Any, s3: Any, bucket: str) -> None:
    data = bytes(range(256)) * 1000
    response = raw(
        "PUT",
        f"/{bucket}/signed",
        chunked(data, 8192, {}, signed=True),
        {
            "Content-Encoding": "aws-chunked,gzip",
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "x-amz-decoded-content-length": str(len(data)),
        },
    )
    assert response.status == 200, response.body
    got = s3.get_object(Bucket=bucket, Key="signed")
    assert (got["Body"].read(), got["ContentEncoding"]) == (data, "gzip")


def test_trailing_checksum_mismatch_stores_nothing(raw: Any, s3: Any, bucket: str) -> None:
    data = b"payload" * 1000
    response = raw(
        "PUT",
        f"/{bucket}/bad-trailer",
        chunked(data, 4096, {"x-amz-checksum-crc32c": crc32c(b"something else")}),
        {
            "Content-Encoding": "aws-chunked",
            "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "x-amz-decoded-content-length": str(len(data)),
            "x-amz-trailer": "x-amz-checksum-crc32c",
        },
    )
    assert response.status == 400
    assert b"<Code>BadDigest</Code>" in response.body
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_header_checksums_are_verified(raw: Any, s3: Any, bucket: str) -> None:
    data = b"the real body"
    good = {
        "x-amz-checksum-crc32": crc32(data),
        "x-amz-checksum-crc32c": crc32c(data),
        "x-amz-checksum-sha1": b64(hashlib.sha1(data, usedforsecurity=False).digest()),
        "x-amz-checksum-sha256": b64(hashlib.sha256(data).digest()),
        "Content-MD5": b64(hashlib.md5(data, usedforsecurity=False).digest()),
        "x-amz-content-sha256": hashlib.sha256(data).hexdigest(),
    }
    assert raw("PUT", f"/{bucket}/good", data, good).status == 200
    head = s3.head_object(Bucket=bucket, Key="good", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"] == crc32c(data)
    for name, code in [
        ("x-amz-checksum-crc32", b"BadDigest"),
        ("x-amz-checksum-crc32c", b"BadDigest"),
        ("x-amz-checksum-sha1", b"BadDigest"),
        ("x-amz-checksum-sha256", b"BadDigest"),
        ("Content-MD5", b"BadDigest"),
        ("x-amz-content-sha256", b"XAmzContentSHA256Mismatch"),
    ]:
        other = b"other body!!!"
        wrong = (
            hashlib.sha256(other).hexdigest()
            if name == "x-amz-content-sha256"
            else {
                "x-amz-checksum-crc32": crc32(other),
                "x-amz-checksum-crc32c": crc32c(other),
                "x-amz-checksum-sha1": b64(hashlib.sha1(other, usedforsecurity=False).digest()),
                "x-amz-checksum-sha256": b64(hashlib.sha256(other).digest()),
                "Content-MD5": b64(hashlib.md5(other, usedforsecurity=False).digest()),
            }[name]
        )
        response = raw("PUT", f"/{bucket}/bad", data, {name: wrong})
        assert (response.status, f"<Code>{code.decode()}</Code>".encode() in response.body) == (
            400,
            True,
        ), name
    assert raw("PUT", f"/{bucket}/bad", data, {"Content-MD5": "not base64"}).status == 400
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["good"]


def test_a_truncated_upload_leaves_nothing(
    server: SabioServer, s3: Any, bucket: str, raw: Any
) -> None:
    head = (
        f"PUT /{bucket}/truncated HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Authorization: AWS4-HMAC-SHA256 Credential=t/20261122/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=0\r\n"
        "Content-Length: 10000000\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as connection:
        connection.sendall(head + b"x" * 3_000_000)
        time.sleep(0.3)  # the server is writing what came so far
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the server notices the disconnect and cleans up
        leftovers = [p for p in (server.home / "artifacts" / bucket).rglob("*") if p.is_file()]
        if not leftovers:
            break
        time.sleep(0.05)
    assert leftovers == []
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert raw("HEAD", f"/{bucket}/truncated").status == 404


def test_malformed_requests(raw: Any, bucket: str) -> None:
    response = raw("POST", f"/{bucket}?delete", b"<Delete><Object><Key>a</Key>", {})
    assert (response.status, b"<Code>MalformedXML</Code>" in response.body) == (400, True)
    entity = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x "y">]>'
        b"<Delete><Object><Key>&x;</Key></Object></Delete>"
    )
    assert raw("POST", f"/{bucket}?delete", entity).status == 400
    response = raw("PATCH", f"/{bucket}/k")
    assert (response.status, b"<Code>MethodNotAllowed</Code>" in response.body) == (405, True)
    response = raw("GET", f"/{bucket}?list-type=2&max-keys=lots")
    assert (response.status, b"<Code>InvalidArgument</Code>" in response.body) == (400, True)
    response = raw("GET", f"/{bucket}?list-type=2&continuation-token=%%%")
    assert response.status == 400
    response = raw(
        "PUT",
        f"/{bucket}/chunky",
        b"zz\r\nnot hex\r\n",
        {
            "Content-Encoding": "aws-chunked",
            "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        },
    )
    assert response.status == 400
    response = raw(
        "PUT",
        f"/{bucket}/big",
        b"",
        {
            "Content-Length": "0",
            "x-amz-decoded-content-length": "6000000000",
            "Content-Encoding": "aws-chunked",
        },
    )
    assert (response.status, b"<Code>EntityTooLarge</Code>" in response.body) == (400, True)
    assert raw("GET", "/").status == 200  # ListBuckets


def test_other_services_are_not_taken_for_s3(server: SabioServer, raw: Any) -> None:
    import json
    import urllib.request

    request = urllib.request.Request(
        f"{server.url}/",
        data=json.dumps({}).encode(),
        headers={
            "X-Amz-Target": "SageMaker.ListModels",
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": "AWS4-HMAC-SHA256 "
            "Credential=t/20261122/us-east-1/sagemaker/aws4_request, SignedHeaders=host, "
            "Signature=0",
        },
    )
    with urllib.request.urlopen(request) as response:
        assert "Models" in json.loads(response.read())


def test_large_bodies_are_checked_by_every_algorithm(raw: Any, s3: Any, bucket: str) -> None:
    """Bodies of several blocks, one after another: each is hashed whole and stored intact."""
    for index in range(3):
        data = os.urandom(3 * 1024 * 1024 + 5 + index)
        headers = {
            "x-amz-checksum-crc32c": crc32c(data),
            "x-amz-checksum-sha1": b64(hashlib.sha1(data, usedforsecurity=False).digest()),
            "Content-MD5": b64(hashlib.md5(data, usedforsecurity=False).digest()),
            "x-amz-content-sha256": hashlib.sha256(data).hexdigest(),
        }
        assert raw("PUT", f"/{bucket}/big-{index}", data, headers).status == 200
        assert s3.get_object(Bucket=bucket, Key=f"big-{index}")["Body"].read() == data
    data = os.urandom(2 * 1024 * 1024)
    bad = {"x-amz-checksum-crc32c": crc32c(data[:-1] + bytes([data[-1] ^ 1]))}
    assert b"<Code>BadDigest</Code>" in raw("PUT", f"/{bucket}/bad", data, bad).body
