"""The SageMaker runtime (rest-json): `POST /endpoints/{name}/invocations`.

This is the hottest path in the server, so it is a raw ASGI handler placed in front of the
router-based application: no routing table, no request or response objects.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sabio.api.errors import request_id, rest_json_error
from sabio.api.runtime_async import AsyncRuntime
from sabio.api.runtime_stream import invoke_stream
from sabio.asgi_body import Receive, content_length, read_capped
from sabio.errors import (
    InternalFailureError,
    RuntimePayloadTooLargeError,
    RuntimeValidationError,
    SabioError,
)
from sabio.serving.router import FORWARDED_HEADERS, Router

log = logging.getLogger("sabio.api")

Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_PREFIX = "/endpoints/"
_FORWARDED = frozenset(h.encode() for h in FORWARDED_HEADERS)
_NOT_SUPPORTED = {
    "async-invocations": "InvokeEndpointAsync",
}


class Runtime:
    """Serves the runtime routes and hands every other request to `app`."""

    def __init__(
        self, router: Router, max_invocation_bytes: int, asynchronous: AsyncRuntime | None = None
    ) -> None:
        self.router = router
        self.asynchronous = asynchronous
        self.max_bytes = max_invocation_bytes
        self.too_large = RuntimePayloadTooLargeError(
            f"Received payload larger than the maximum of {max_invocation_bytes} bytes "
            "for InvokeEndpoint."
        )

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["method"] == "POST":
                path: str = scope["path"]
                if path.startswith(_PREFIX):
                    name, _, operation = path[len(_PREFIX) :].partition("/")
                    if operation == "invocations" and name:
                        await self.invoke(name, scope, receive, send)
                        return
                    if operation == "invocations-response-stream" and name:
                        await invoke_stream(
                            self.router, self.max_bytes, self.too_large, name, scope, receive, send
                        )
                        return
                    if operation == "async-invocations" and name and self.asynchronous:
                        await self.asynchronous.invoke(name, scope, receive, send)
                        return
                    if operation in _NOT_SUPPORTED and name:
                        error = RuntimeValidationError(
                            f"Sabio does not implement {_NOT_SUPPORTED[operation]} yet."
                        )
                        await _send_error(send, error, request_id())
                        return
            await app(scope, receive, send)

        return dispatch

    async def invoke(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        rid = request_id()
        if self.asynchronous is not None and self.asynchronous.is_async(name):
            await _send_error(send, self.asynchronous.realtime_refused(name), rid)
            return
        forwarded: dict[str, str] = {}
        target: str | None = None
        declared: int | None = None
        for key, value in scope["headers"]:
            if key in _FORWARDED:
                forwarded[key.decode()] = value.decode("latin-1")
            elif key == b"content-length":
                declared = content_length(value)
            elif key == b"x-amzn-sagemaker-target-variant":
                target = value.decode("latin-1")
        try:
            body = await read_capped(receive, declared, self.max_bytes, self.too_large)
            result = await self.router.invoke(name, body, forwarded, target)
        except SabioError as error:
            await _send_error(send, error, rid)
            return
        except Exception:
            log.exception("unexpected error invoking %s", name)
            await _send_error(send, InternalFailureError("An internal error occurred."), rid)
            return
        headers = [
            (b"content-type", result.content_type.encode("latin-1")),
            (b"content-length", b"%d" % len(result.body)),
            (b"x-amzn-invoked-production-variant", result.variant.encode("latin-1")),
            (b"x-amzn-requestid", rid.encode()),
        ]
        if result.custom_attributes is not None:
            headers.append(
                (b"x-amzn-sagemaker-custom-attributes", result.custom_attributes.encode("latin-1"))
            )
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": result.body})


async def _send_error(send: Send, error: SabioError, rid: str) -> None:
    status, headers, body = rest_json_error(error, rid)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
