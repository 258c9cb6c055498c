"""The gateway's pure parts, without a server: telling S3 requests apart, aws-chunked framing
split anywhere, byte ranges, and the listing page rule."""

from __future__ import annotations

import time

import pytest

from sabio.api.s3.chunked import AwsChunkedDecoder
from sabio.api.s3.errors import IncompleteBodyError, InvalidRangeError, InvalidRequestError
from sabio.api.s3.headers import byte_range
from sabio.api.s3.listing import paginate
from sabio.api.s3.routing import is_s3
from sabio.artifacts.store import ObjectInfo
from sabio.artifacts.uri import ObjectUri


def scope(authorization: bytes | None = None, query: bytes = b"") -> dict[str, object]:
    headers = [(b"host", b"x")] + ([(b"authorization", authorization)] if authorization else [])
    return {"headers": headers, "query_string": query}


def test_s3_requests_are_told_apart_by_their_signing_scope() -> None:
    v4 = b"AWS4-HMAC-SHA256 Credential=AK/20261122/us-east-1/%s/aws4_request, SignedHeaders=host"
    assert is_s3(scope(v4 % b"s3"))
    assert not is_s3(scope(v4 % b"sagemaker"))
    assert not is_s3(scope(v4 % b"logs"))
    assert is_s3(scope(b"AWS AKID:signature"))  # SigV2 is S3's alone
    assert not is_s3(scope())
    presigned = (
        b"X-Amz-Algorithm=AWS4-HMAC-SHA256"
        b"&X-Amz-Credential=AK%2F20261122%2Fus-east-1%2Fs3%2Faws4_request"
    )
    assert is_s3(scope(query=presigned))
    assert not is_s3(scope(query=presigned.replace(b"s3", b"sagemaker")))
    assert is_s3(scope(query=b"AWSAccessKeyId=AK&Signature=x&Expires=1"))


def framed(data: bytes, trailers: bytes = b"x-amz-checksum-crc32:abc=\r\n") -> bytes:
    return (
        b"a;chunk-signature=00\r\n"
        + data[:10]
        + b"\r\n5\r\n"
        + data[10:]
        + b"\r\n0\r\n"
        + trailers
        + b"\r\n"
    )


@pytest.mark.parametrize("split", range(1, 40))
def test_aws_chunked_decoding_at_any_split(split: int) -> None:
    data = b"0123456789abcde"
    body = framed(data)
    decoder = AwsChunkedDecoder()
    out = b"".join(decoder.feed(body[i : i + split]) for i in range(0, len(body), split))
    assert out == data
    assert decoder.finish() == {"x-amz-checksum-crc32": "abc="}


def test_aws_chunked_errors() -> None:
    with pytest.raises(InvalidRequestError):
        AwsChunkedDecoder().feed(b"zz\r\n")
    with pytest.raises(InvalidRequestError):
        AwsChunkedDecoder().feed(b"2\r\nabc\r\n")  # longer than its size says
    truncated = AwsChunkedDecoder()
    truncated.feed(b"a\r\n01234")
    with pytest.raises(IncompleteBodyError):
        truncated.finish()
    with pytest.raises(InvalidRequestError):
        AwsChunkedDecoder().feed(b"1" * 10000)  # a header line without end


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-0", (0, 1)),
        ("bytes=5-", (5, 10)),
        ("bytes=-3", (7, 10)),
        ("bytes=-30", (0, 10)),
        ("bytes=2-100", (2, 10)),
        ("bytes=5-2", None),  # invalid: ignored
        ("bytes=0-1,3-4", None),  # several ranges: the whole object, as S3 does
        ("lines=0-1", None),
        ("bytes=x-y", None),
    ],
)
def test_byte_ranges(header: str | None, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, 10) == expected


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=10-20", "bytes=-0"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(InvalidRangeError):
        byte_range(header, 10)
    with pytest.raises(InvalidRangeError):
        byte_range("bytes=0-", 0)


def objects(*keys: str) -> list[ObjectInfo]:
    return [ObjectInfo(ObjectUri("s3", "b", k), 1, time.time()) for k in keys]


def test_pages_count_keys_and_prefixes_and_resume_after_either() -> None:
    listing = objects("a", "b/1", "b/2", "c", "d/1", "e")
    first = paginate(listing, "", "/", "", 2)
    assert ([o.uri.key for o in first.contents], first.prefixes, first.truncated, first.last) == (
        ["a"],
        ["b/"],
        True,
        "b/",
    )
    second = paginate(listing, "", "/", first.last, 2)
    assert ([o.uri.key for o in second.contents], second.prefixes, second.last) == (
        ["c"],
        ["d/"],
        "d/",
    )
    third = paginate(listing, "", "/", second.last, 2)
    assert ([o.uri.key for o in third.contents], third.truncated) == (["e"], False)
    inner = paginate(listing, "b/", "/", "", 10)
    assert [o.uri.key for o in inner.contents] == ["b/1", "b/2"]
