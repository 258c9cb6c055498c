"""`POST /endpoints/{name}/async-invocations` (InvokeEndpointAsync): read the headers and the
optional inline body, hand them to the asynchronous inference service, answer 202."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sabio.api.errors import request_id, rest_json_error
from sabio.asgi_body import Receive, content_length, read_capped
from sabio.asyncinference.service import AsyncInferenceService
from sabio.errors import (
    InternalFailureError,
    RuntimePayloadTooLargeError,
    RuntimeValidationError,
    SabioError,
)

log = logging.getLogger("sabio.api")

Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_PREFIX = b"x-amzn-sagemaker-"


class AsyncRuntime:
    def __init__(self, service: AsyncInferenceService, max_inline_bytes: int, account: str):
        self.service = service
        self.account = account
        self.max_inline = max_inline_bytes
        self.too_large = RuntimePayloadTooLargeError(
            f"Received an inline Body larger than the maximum of {max_inline_bytes} bytes for "
            "InvokeEndpointAsync. Upload the payload to S3 and pass its URI as InputLocation."
        )

    def is_async(self, name: str) -> bool:
        return self.service.endpoints.is_async(name)

    def realtime_refused(self, name: str) -> RuntimeValidationError:
        return RuntimeValidationError(
            f"Endpoint {name} of account {self.account} is configured for asynchronous "
            "inference. Use InvokeEndpointAsync."
        )

    async def invoke(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        rid = request_id()
        headers: dict[str, str] = {}
        declared: int | None = None
        for key, value in scope["headers"]:
            if key.startswith(_PREFIX):
                headers[key.decode("latin-1")] = value.decode("latin-1")
            elif key == b"content-length":
                declared = content_length(value)
        try:
            body = await read_capped(receive, declared, self.max_inline, self.too_large)
            accepted = await asyncio.to_thread(self.service.accept, name, headers, body)
        except SabioError as error:
            status, error_headers, payload = rest_json_error(error, rid)
            await _respond(send, status, error_headers, payload)
            return
        except Exception:
            log.exception("unexpected error accepting an async invocation of %s", name)
            failure = InternalFailureError("An internal error occurred.")
            status, error_headers, payload = rest_json_error(failure, rid)
            await _respond(send, status, error_headers, payload)
            return
        payload = json.dumps({"InferenceId": accepted.inference_id}).encode()
        response_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(payload)),
            (b"x-amzn-requestid", rid.encode()),
            (b"x-amzn-sagemaker-outputlocation", accepted.output_location.encode()),
        ]
        if accepted.failure_location is not None:
            response_headers.append(
                (b"x-amzn-sagemaker-failurelocation", accepted.failure_location.encode())
            )
        await _respond(send, 202, response_headers, payload)


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], payload: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
