"""The SageMaker runtime (rest-json): `POST /endpoints/{name}/invocations`.

This is the hottest path in the server, so it is a raw ASGI handler placed in front of the
router-based application: no routing table, no request or response objects.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sabio.api.errors import request_id
from sabio.api.runtime_async import AsyncRuntime
from sabio.api.runtime_stream import invoke_stream
from sabio.api.runtime_wire import (
    Scope,
    Send,
    invalid_endpoint_name,
    invocation_headers,
    respond,
    send_error,
    send_failure,
    unknown_operation,
)
from sabio.asgi_body import Receive, read_capped
from sabio.errors import RuntimePayloadTooLargeError, RuntimeValidationError
from sabio.serving.router import FORWARDED_HEADERS, Router

__all__ = ["ASGIApp", "Runtime", "Scope", "Send"]

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_PREFIX = "/endpoints/"
_FORWARDED = frozenset(h.encode() for h in FORWARDED_HEADERS)
_NOT_SUPPORTED = {
    "async-invocations": "InvokeEndpointAsync",
}
_OTHER_OPERATIONS = frozenset({"invocations-response-stream", "async-invocations"})


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
        """Every path under `/endpoints/` is the runtime's: what no operation claims gets the
        runtime's 404 `UnknownOperationException`, never the web app's 404."""

        async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and (path := scope["path"]).startswith(_PREFIX):
                if scope["method"] == "POST":
                    name, _, operation = path[len(_PREFIX) :].partition("/")
                    if operation == "invocations" and name:
                        await self.invoke(name, scope, receive, send)
                        return
                    if name and operation in _OTHER_OPERATIONS:
                        await self._invoke_other(name, operation, scope, receive, send)
                        return
                await send_error(send, unknown_operation(scope["method"], path), request_id())
                return
            await app(scope, receive, send)

        return dispatch

    async def _invoke_other(
        self, name: str, operation: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """The streaming and asynchronous forms of InvokeEndpoint."""
        if self.router.route(name) is None:
            malformed = invalid_endpoint_name(name)
            if malformed is not None:
                await send_error(send, malformed, request_id())
                return
        if operation == "invocations-response-stream":
            if self.asynchronous is not None and self.asynchronous.is_async(name):
                refused = self.asynchronous.realtime_refused(name)
                await send_error(send, refused, request_id())
                return
            await invoke_stream(
                self.router, self.max_bytes, self.too_large, name, scope, receive, send
            )
            return
        if self.asynchronous is not None:
            await self.asynchronous.invoke(name, scope, receive, send)
            return
        error = RuntimeValidationError(f"Sabio does not implement {_NOT_SUPPORTED[operation]} yet.")
        await send_error(send, error, request_id())

    async def invoke(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        rid = request_id()
        if self.asynchronous is not None and self.asynchronous.is_async(name):
            await send_error(send, self.asynchronous.realtime_refused(name), rid)
            return
        forwarded, target, declared = invocation_headers(scope["headers"], _FORWARDED)
        try:
            body = await read_capped(receive, declared, self.max_bytes, self.too_large)
            result = await self.router.invoke(name, body, forwarded, target, request_id=rid)
        except Exception as failure:
            if isinstance(failure, RuntimeValidationError):
                # Only here, off the success path: a malformed name is never found.
                failure = invalid_endpoint_name(name) or failure
            await send_failure(send, failure, rid, f"invoking {name}")
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
        await respond(send, 200, headers, result.body)
