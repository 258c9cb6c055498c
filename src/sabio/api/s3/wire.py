"""One S3 request as the gateway sees it, and the ways to answer it on raw ASGI."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from sabio.api.runtime import Scope, Send
from sabio.api.s3.blocks import BlockPool
from sabio.api.s3.errors import InvalidURIError
from sabio.artifacts.store import ArtifactStore
from sabio.artifacts.uri import ObjectUri
from sabio.asgi_body import Receive

Runner = Callable[..., "asyncio.Future[Any]"]


def new_request_id() -> str:
    return os.urandom(8).hex().upper()


@dataclass
class S3Request:
    scope: Scope
    receive: Receive
    send: Send
    run: Runner  # runs a blocking call on the gateway's threads
    store: ArtifactStore
    region: str
    method: str
    bucket: str
    key: str
    query: dict[str, str]
    headers: dict[str, str]
    request_id: str = field(default_factory=new_request_id)
    body_consumed: bool = False
    blocks: BlockPool = field(default_factory=BlockPool)  # the gateway's, shared

    @classmethod
    def from_scope(
        cls,
        scope: Scope,
        receive: Receive,
        send: Send,
        run: Runner,
        store: ArtifactStore,
        region: str,
        blocks: BlockPool | None = None,
        virtual_hosts: Sequence[str] = (),
    ) -> S3Request:
        """`virtual_hosts`: base host names under which `<bucket>.<base>` names the bucket
        (virtual-hosted style); any other host is addressed path-style (`/bucket/key`)."""
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        try:
            path = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidURIError("Couldn't parse the specified URI.") from None
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            text = name.decode("latin-1")
            decoded = value.decode("latin-1")
            headers[text] = f"{headers[text]},{decoded}" if text in headers else decoded
        bucket = virtual_bucket(headers.get("host", ""), virtual_hosts)
        if bucket:
            key = path[1:] if path.startswith("/") else ""
        else:
            bucket, _, key = (
                path.lstrip("/").partition("/") if path.startswith("/") else ("", "", "")
            )
        query_string = scope.get("query_string", b"").decode("latin-1")
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        method = scope["method"]
        request = cls(scope, receive, send, run, store, region, method, bucket, key, query, headers)
        if blocks is not None:
            request.blocks = blocks
        return request

    @property
    def uri(self) -> ObjectUri:
        return ObjectUri("s3", self.bucket, self.key)

    @property
    def resource(self) -> str:
        return f"/{self.bucket}/{self.key}" if self.key else f"/{self.bucket}"

    @property
    def has_body(self) -> bool:
        length = self.headers.get("content-length", "0")
        return "transfer-encoding" in self.headers or (length.isdigit() and int(length) > 0)

    def header_text(self, name: str) -> str | None:
        """A header sent as RFC 2047 or raw UTF-8 (botocore sends metadata as UTF-8 bytes)."""
        value = self.headers.get(name)
        if value is None:
            return None
        try:
            return value.encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            return value


def virtual_bucket(host: str, bases: Sequence[str]) -> str:
    """The bucket a `Host` names under one of `bases` (`my-bucket.localhost:8080` under
    `localhost`), or "" when it names none (the base itself, an IP address, another name)."""
    name = host.strip().lower()
    if name.startswith("["):  # an IPv6 literal
        return ""
    name = name.rpartition(":")[0] if ":" in name else name
    for base in bases:
        suffix = "." + base.strip(".").lower()
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return ""


def base_headers(request: S3Request) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-amz-request-id", request.request_id.encode()),
        (b"x-amz-id-2", base64.b64encode(request.request_id.encode())),
        (b"server", b"Sabio"),
    ]
    if request.has_body and not request.body_consumed:
        # Answered before the body was read (or fully read): the connection cannot be reused,
        # because the client may still be sending it.
        headers.append((b"connection", b"close"))
    return headers


def encode_headers(pairs: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    out = []
    for name, value in pairs:
        try:
            out.append((name.encode("latin-1"), value.encode("latin-1")))
        except UnicodeEncodeError:  # metadata values outside latin-1 go out as UTF-8 bytes
            out.append((name.encode("utf-8"), value.encode("utf-8")))
    return out


async def respond(
    request: S3Request,
    status: int,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> None:
    out = base_headers(request) + encode_headers(headers)
    if content_type is not None:
        out.append((b"content-type", content_type.encode()))
    out.append((b"content-length", str(len(body)).encode()))
    await request.send({"type": "http.response.start", "status": status, "headers": out})
    await request.send(
        {"type": "http.response.body", "body": body if request.method != "HEAD" else b""}
    )


async def respond_xml(
    request: S3Request, body: bytes, status: int = 200, headers: Iterable[tuple[str, str]] = ()
) -> None:
    await respond(request, status, headers, body, "application/xml")
