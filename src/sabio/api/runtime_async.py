"""`POST /endpoints/{name}/async-invocations` (InvokeEndpointAsync): read the headers and the
optional inline body, hand them to the asynchronous inference service, answer 202."""

from __future__ import annotations

import asyncio
import json

from sabio.api.errors import request_id
from sabio.api.runtime_wire import Scope, Send, respond, send_failure
from sabio.asgi_body import Receive, content_length, read_capped
from sabio.asyncinference.service import AsyncInferenceService
from sabio.errors import RuntimePayloadTooLargeError, RuntimeValidationError

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
        except Exception as failure:
            await send_failure(send, failure, rid, f"accepting an async invocation of {name}")
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
        await respond(send, 202, response_headers, payload)
