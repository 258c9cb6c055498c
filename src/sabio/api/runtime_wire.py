"""What the raw ASGI runtime handlers (InvokeEndpoint, its response-stream and asynchronous
forms) share: reading the invocation headers in one pass and sending a whole response."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

from sabio.api.errors import rest_json_error
from sabio.asgi_body import content_length
from sabio.errors import InternalFailureError, SabioError

log = logging.getLogger("sabio.api")
Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_NO_RENAMES: Mapping[bytes, str] = {}


def invocation_headers(
    headers: Iterable[tuple[bytes, bytes]],
    forwarded_names: frozenset[bytes],
    renamed: Mapping[bytes, str] = _NO_RENAMES,
) -> tuple[dict[str, str], str | None, int | None]:
    """The headers the worker may see (those in `forwarded_names`, and those in `renamed` under
    their new name), the `X-Amzn-SageMaker-Target-Variant` and the declared Content-Length."""
    forwarded: dict[str, str] = {}
    target: str | None = None
    declared: int | None = None
    for key, value in headers:
        if key in forwarded_names:
            forwarded[key.decode()] = value.decode("latin-1")
        elif key in renamed:
            forwarded[renamed[key]] = value.decode("latin-1")
        elif key == b"content-length":
            declared = content_length(value)
        elif key == b"x-amzn-sagemaker-target-variant":
            target = value.decode("latin-1")
    return forwarded, target, declared


async def respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], payload: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def send_error(send: Send, error: SabioError, rid: str) -> None:
    """The error in rest-json form, as botocore parses runtime errors."""
    status, headers, body = rest_json_error(error, rid)
    await respond(send, status, headers, body)


async def send_failure(send: Send, failure: Exception, rid: str, doing: str) -> None:
    """Answer a request that failed before its response started: a `SabioError` as itself,
    anything else logged (as `unexpected error <doing>`) and sent as an InternalFailure, never
    a traceback. Call it from the `except` block, so the log has the traceback."""
    if isinstance(failure, SabioError):
        await send_error(send, failure, rid)
        return
    log.exception("unexpected error %s", doing)
    await send_error(send, InternalFailureError("An internal error occurred."), rid)
