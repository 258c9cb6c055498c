"""The integrity checks S3 clients send with a body, computed as the body streams through.

botocore sends `x-amz-checksum-crc32` (its default) or whichever of CRC32C, SHA1, SHA256 the
caller picked, either as a header or as a trailer of an aws-chunked body; older clients send
`Content-MD5`; SigV4 puts the SHA-256 of a signed payload in `x-amz-content-sha256`."""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Mapping
from typing import Protocol

import google_crc32c

from sabio.api.s3.errors import (
    BadDigestError,
    InvalidArgumentError,
    InvalidDigestError,
    InvalidRequestError,
    SHA256MismatchError,
)
from sabio.artifacts.store import Chunk

ALGORITHMS = ("CRC32", "CRC32C", "SHA1", "SHA256")
_UNSUPPORTED = ("CRC64NVME",)
_PAYLOAD_PLACEHOLDERS = ("UNSIGNED-PAYLOAD", "STREAMING-")


class Digest(Protocol):
    def update(self, data: Chunk, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: Chunk) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


class _Crc32c:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: Chunk) -> None:
        # google_crc32c takes only read-only buffers
        self.value = google_crc32c.extend(
            self.value, data if isinstance(data, bytes) else bytes(data)
        )

    def digest(self) -> bytes:
        return int(self.value).to_bytes(4, "big")


def new_digest(algorithm: str) -> Digest:
    if algorithm == "CRC32":
        return _Crc32()
    if algorithm == "CRC32C":
        return _Crc32c()
    if algorithm == "SHA1":
        return hashlib.sha1(usedforsecurity=False)
    if algorithm == "SHA256":
        return hashlib.sha256()
    if algorithm == "MD5":
        return hashlib.md5(usedforsecurity=False)
    raise InvalidArgumentError(f"Checksum algorithm {algorithm} is not supported.")


def header_name(algorithm: str) -> str:
    return f"x-amz-checksum-{algorithm.lower()}"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def composite(algorithm: str, part_values: list[str]) -> str:
    """S3's checksum of a multipart object: the checksum of the parts' raw checksums, `-N`."""
    digest = new_digest(algorithm)
    for value in part_values:
        digest.update(base64.b64decode(value))
    return f"{b64(digest.digest())}-{len(part_values)}"


def requested_algorithm(headers: Mapping[str, str]) -> str | None:
    """The algorithm a client names for an upload (`x-amz-checksum-algorithm` on
    CreateMultipartUpload, `x-amz-sdk-checksum-algorithm` on a PUT)."""
    for name in ("x-amz-checksum-algorithm", "x-amz-sdk-checksum-algorithm"):
        value = headers.get(name)
        if value:
            algorithm = value.upper()
            if algorithm in _UNSUPPORTED:
                raise InvalidRequestError(
                    f"Sabio does not support {algorithm} checksums; use one of "
                    f"{', '.join(ALGORITHMS)}."
                )
            if algorithm not in ALGORITHMS:
                raise InvalidArgumentError(f"Checksum algorithm {value} is not supported.")
            return algorithm
    return None


class BodyVerifier:
    """Computes every digest the request asks to be checked, and checks them at the end.

    Expected values may arrive late (in aws-chunked trailers): `expect` adds them."""

    def __init__(
        self,
        headers: Mapping[str, str],
        *,
        trailer_names: frozenset[str] = frozenset(),
        algorithm: str | None = None,
    ) -> None:
        self.expected: dict[str, str] = {}
        self.digests: dict[str, Digest] = {}
        self.algorithm = requested_algorithm(headers) or algorithm
        for algorithm in _UNSUPPORTED:
            if header_name(algorithm) in headers or header_name(algorithm) in trailer_names:
                requested_algorithm({"x-amz-checksum-algorithm": algorithm})
        for algorithm in ALGORITHMS:
            name = header_name(algorithm)
            if name in headers:
                self.expected[algorithm] = headers[name]
            if name in headers or name in trailer_names or self.algorithm == algorithm:
                self.digests[algorithm] = new_digest(algorithm)
        md5 = headers.get("content-md5")
        if md5 is not None:
            try:
                if len(base64.b64decode(md5, validate=True)) != 16:
                    raise ValueError
            except (binascii.Error, ValueError):
                raise InvalidDigestError("The Content-MD5 you specified was invalid.") from None
            self.expected["MD5"] = md5
            self.digests["MD5"] = new_digest("MD5")
        sha256 = headers.get("x-amz-content-sha256", "")
        self.payload_sha256: str | None = None
        if sha256 and not sha256.startswith(_PAYLOAD_PLACEHOLDERS):
            self.payload_sha256 = sha256.lower()
            self.digests.setdefault("SHA256", new_digest("SHA256"))

    def update(self, data: Chunk) -> None:
        for digest in self.digests.values():
            digest.update(data)

    def expect(self, trailers: Mapping[str, str]) -> None:
        for algorithm in ALGORITHMS:
            value = trailers.get(header_name(algorithm))
            if value is not None:
                self.expected[algorithm] = value

    def verify(self) -> dict[str, str]:
        """Raise on any mismatch; return the checksums worth keeping (base64, by algorithm)."""
        if self.payload_sha256 is not None:
            actual = self.digests["SHA256"].digest().hex()
            if actual != self.payload_sha256:
                raise SHA256MismatchError(
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    ClientComputedContentSHA256=self.payload_sha256,
                    S3ComputedContentSHA256=actual,
                )
        kept: dict[str, str] = {}
        for algorithm, digest in self.digests.items():
            actual = b64(digest.digest())
            expected = self.expected.get(algorithm)
            if expected is not None and expected != actual:
                if algorithm == "MD5":
                    raise BadDigestError(
                        "The Content-MD5 you specified did not match what we received."
                    )
                raise BadDigestError(
                    f"The {algorithm} you specified did not match the calculated checksum."
                )
            if algorithm != "MD5" and (expected is not None or algorithm == self.algorithm):
                kept[algorithm] = actual
        return kept
