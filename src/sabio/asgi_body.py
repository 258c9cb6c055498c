"""Reading ASGI request bodies with a size cap, without holding an oversized body in memory.

Shared by the server's protocol adapters and the model worker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

# An oversized body is read and thrown away up to this much, so the client sees the error
# instead of a reset connection; past it the connection is dropped.
_DRAIN_LIMIT = 256 * 1024 * 1024


async def read_capped(
    receive: Receive, declared: int | None, limit: int, error: Exception
) -> bytes:
    if declared is not None and declared > limit:
        await _drain(receive)
        raise error
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise error
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            chunks.clear()
            await _drain(receive)
            raise error
        chunks.append(chunk)
    return b"".join(chunks)


def content_length(value: bytes | str | None) -> int | None:
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    return int(text) if text.isdigit() else None


async def _drain(receive: Receive) -> None:
    seen = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False) or seen > _DRAIN_LIMIT:
            return
