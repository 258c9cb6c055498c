"""Fixtures for the S3 gateway tests: boto3 configured only through AWS_ENDPOINT_URL, a fresh
bucket per test, and raw HTTP requests for what boto3 will not send."""

from __future__ import annotations

import http.client
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from support.server import SabioServer

SIGNED_FOR_S3 = (
    "AWS4-HMAC-SHA256 Credential=testing/20261122/us-east-1/s3/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=0000"
)


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


Raw = Callable[..., RawResponse]


@pytest.fixture
def s3(endpoint_url: str) -> Any:
    return boto3.client("s3")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"gw-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def raw(server: SabioServer) -> Raw:
    """Send one request signed (in form) for S3, exactly as given."""

    def send(
        method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> RawResponse:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            connection.request(
                method, path, body=body, headers={"Authorization": SIGNED_FOR_S3, **(headers or {})}
            )
            response = connection.getresponse()
            return RawResponse(
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    return send
