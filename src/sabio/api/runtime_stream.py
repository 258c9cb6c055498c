"""InvokeEndpointWithResponseStream: `POST /endpoints/{name}/invocations-response-stream`.

The answer is an AWS event stream: one `PayloadPart` per chunk the model produces, sent as it
arrives, and a `ModelStreamError` event if the model fails after the stream has started.
Errors before that are ordinary rest-json runtime errors.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sabio.api.errors import request_id, rest_json_error
from sabio.asgi_body import Receive, content_length, read_capped
from sabio.errors import InternalFailureError, RuntimePayloadTooLargeError, SabioError
from sabio.serving import eventstream
from sabio.serving.response_stream import ResponseStream, StreamFailure
from sabio.serving.router import FORWARDED_HEADERS, Router

log = logging.getLogger("sabio.api")

Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

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
    forwarded: dict[str, str] = {}
    target: str | None = None
    declared: int | None = None
    for key, value in scope["headers"]:
        if key in _FORWARDED:
            forwarded[key.decode()] = value.decode("latin-1")
        elif key in _RENAMED:
            forwarded[_RENAMED[key]] = value.decode("latin-1")
        elif key == b"content-length":
            declared = content_length(value)
        elif key == b"x-amzn-sagemaker-target-variant":
            target = value.decode("latin-1")
    try:
        body = await read_capped(receive, declared, max_bytes, too_large)
        stream = await router.invoke_stream(name, body, forwarded, target)
    except SabioError as error:
        await _send_error(send, error, rid)
        return
    except Exception:
        log.exception("unexpected error invoking %s with a response stream", name)
        await _send_error(send, InternalFailureError("An internal error occurred."), rid)
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


async def _send_error(send: Send, error: SabioError, rid: str) -> None:
    status, headers, body = rest_json_error(error, rid)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
