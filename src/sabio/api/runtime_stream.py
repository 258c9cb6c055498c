"""InvokeEndpointWithResponseStream: `POST /endpoints/{name}/invocations-response-stream`.

The answer is an AWS event stream: one `PayloadPart` per chunk the model produces, sent as it
arrives, and a `ModelStreamError` event if the model fails after the stream has started.
Errors before that are ordinary rest-json runtime errors.
"""

from __future__ import annotations

import logging

from sabio.api.errors import request_id
from sabio.api.runtime_wire import Scope, Send, invocation_headers, send_failure
from sabio.asgi_body import Receive, read_capped
from sabio.errors import RuntimePayloadTooLargeError
from sabio.serving import eventstream
from sabio.serving.response_stream import ResponseStream, StreamFailure
from sabio.serving.router import FORWARDED_HEADERS, Router

log = logging.getLogger("sabio.api")

# The streaming operation sends Accept as X-Amzn-SageMaker-Accept; the worker reads `accept`.
_RENAMED = {b"x-amzn-sagemaker-accept": "accept"}
_FORWARDED = frozenset(h.encode() for h in FORWARDED_HEADERS if h != "accept")


async def invoke_stream(
    router: Router,
    max_bytes: int,
    too_large: RuntimePayloadTooLargeError,
    name: str,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    rid = request_id()
    forwarded, target, declared = invocation_headers(scope["headers"], _FORWARDED, _RENAMED)
    try:
        body = await read_capped(receive, declared, max_bytes, too_large)
        stream = await router.invoke_stream(name, body, forwarded, target)
    except Exception as failure:
        await send_failure(send, failure, rid, f"invoking {name} with a response stream")
        return
    try:
        await send({"type": "http.response.start", "status": 200, "headers": _headers(stream, rid)})
        async for part in stream.parts:
            if isinstance(part, StreamFailure):
                frame = eventstream.exception(
                    "ModelStreamError", {"Message": part.message, "ErrorCode": part.code}
                )
            else:
                frame = eventstream.payload_part(part)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
    except Exception:
        log.exception("streaming the response of %s failed", name)
        frame = eventstream.exception(
            "InternalStreamFailure", {"Message": "An internal error occurred."}
        )
        await send({"type": "http.response.body", "body": frame, "more_body": True})
    finally:
        await stream.close()
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _headers(stream: ResponseStream, rid: str) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-type", eventstream.CONTENT_TYPE.encode()),
        (b"x-amzn-sagemaker-content-type", stream.content_type.encode("latin-1")),
        (b"x-amzn-invoked-production-variant", stream.variant.encode("latin-1")),
        (b"x-amzn-requestid", rid.encode()),
    ]
    if stream.custom_attributes is not None:
        headers.append(
            (b"x-amzn-sagemaker-custom-attributes", stream.custom_attributes.encode("latin-1"))
        )
    return headers
