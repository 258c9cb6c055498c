"""The worker's raw ASGI application: /ping, /invocations and /execution-parameters.

No framework routing and no thread hop: handlers run inline in the event loop, because a
worker serves one model instance and per-request overhead is the budget that matters.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sabio.asgi_body import read_capped
from sabio.serving.worker.codecs import CodecError
from sabio.serving.worker.handlers import one_line
from sabio.serving.worker.service import ExtraHeaders, Service
from sabio.serving.worker.streaming import Chunks, send_chunks

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 100 * 1024 * 1024


def execution_parameters(max_body: int) -> bytes:
    """What `GET /execution-parameters` tells a batch transform: SageMaker's default 6 MB
    mini-batches, or less when the worker's payload cap is lower."""
    payload_mb = max(1, min(6, max_body // (1024 * 1024)))
    return json.dumps(
        {
            "MaxConcurrentTransforms": 1,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": payload_mb,
        }
    ).encode()


_TEXT = b"text/plain; charset=utf-8"
_JSON = b"application/json"
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class PayloadTooLarge(Exception):
    """The request body exceeds the worker's payload cap."""


def _error_status(exc: Exception) -> int:
    """Honour a ``status_code`` attribute (as the SageMaker toolkit's errors carry), else 500."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status <= 599:
        return status
    return 500


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    extra: ExtraHeaders | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _failed(send: Send, exc: Exception) -> None:
    """Answer a failed invocation with the handler's status (500 unless it carries one)."""
    if isinstance(exc, CodecError):
        await _respond(send, exc.status, str(exc).encode(), _TEXT)
        return
    status = _error_status(exc)
    if status >= 500:
        logger.error("Invocation failed with %s", one_line(exc), exc_info=exc)
    await _respond(send, status, one_line(exc).encode(), _TEXT)


class WorkerApp:
    """ASGI app for one model; ``service`` stays None (pings answer 503) until it is loaded."""

    def __init__(self, service: Service | None = None, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.service = service
        self.max_body = max_body
        self._execution_parameters = execution_parameters(max_body)
        self._content_types: dict[str, bytes] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan":
                await self._lifespan(receive, send)
            return
        path = scope["path"]
        method = scope["method"]
        if path == "/invocations":
            if method == "POST":
                await self._invocations(scope, receive, send)
            else:
                await self._not_allowed(send, b"POST")
        elif path == "/ping":
            if method in ("GET", "HEAD"):
                if self.service is not None:
                    await _respond(send, 200, b"", _TEXT)
                else:
                    await _respond(send, 503, b"Model is loading", _TEXT)
            else:
                await self._not_allowed(send, b"GET, HEAD")
        elif path == "/execution-parameters":
            if method in ("GET", "HEAD"):
                await _respond(send, 200, self._execution_parameters, _JSON)
            else:
                await self._not_allowed(send, b"GET, HEAD")
        else:
            await _respond(send, 404, b"Not found: " + path.encode("utf-8", "replace"), _TEXT)

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = self.service
        if service is None:
            await _respond(send, 503, b"Model is loading", _TEXT)
            return
        headers = scope["headers"]
        content_type: str | None = None
        accept: str | None = None
        for name, value in headers:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"accept":
                accept = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                await self._too_large(send)
                return
        try:
            body = await read_capped(receive, None, self.max_body, PayloadTooLarge())
        except PayloadTooLarge:
            await self._too_large(send)
            return
        try:
            payload, response_type, extra = service.invoke(body, content_type, accept, headers)
            encoded = self._content_types.get(response_type) or self._encode_type(response_type)
        except Exception as exc:
            await _failed(send, exc)
            return
        if isinstance(payload, Chunks):
            headers = [(b"content-type", encoded), *(extra or ())]
            await send_chunks(send, payload, headers, lambda exc: _failed(send, exc))
            return
        await _respond(send, 200, payload, encoded, extra)

    def _encode_type(self, content_type: str) -> bytes:
        encoded = content_type.encode("latin-1")
        if not encoded or _CONTROL.search(encoded):
            raise ValueError(f"Invalid response content type {content_type!r}")
        if len(self._content_types) < 64:
            self._content_types[content_type] = encoded
        return encoded

    async def _too_large(self, send: Send) -> None:
        limit = self.max_body / (1024 * 1024)
        message = f"Request body exceeds the {limit:g} MB payload limit"
        await _respond(send, 413, message.encode(), _TEXT)

    @staticmethod
    async def _not_allowed(send: Send, allow: bytes) -> None:
        await _respond(send, 405, b"Method not allowed", _TEXT, [(b"allow", allow)])

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
