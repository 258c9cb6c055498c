"""What the raw ASGI runtime handlers (InvokeEndpoint, its response-stream and asynchronous
forms) share: reading the invocation headers in one pass, sending a whole response, and the
runtime's answers to a malformed endpoint name or an unknown path."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

from sabio import service_model
from sabio.api.errors import rest_json_error
from sabio.asgi_body import content_length
from sabio.errors import InternalFailureError, RuntimeValidationError, SabioError

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


class UnknownRuntimeOperationError(SabioError):
    """A request under `/endpoints/` that no runtime operation claims: AWS's services answer
    these with a 404 `UnknownOperationException`."""

    code = "UnknownOperationException"
    status = 404


def unknown_operation(method: str, path: str) -> UnknownRuntimeOperationError:
    return UnknownRuntimeOperationError(
        f"{method} {path} matches no SageMaker Runtime operation; InvokeEndpoint is "
        "POST /endpoints/{EndpointName}/invocations."
    )


@functools.cache
def _endpoint_name_rules() -> tuple[int | None, str | None]:
    """The runtime model's own limits on `EndpointName` (maximum length and pattern)."""
    shape = service_model.load(service_model.RUNTIME).shape_for("EndpointName")
    return shape.metadata.get("max"), shape.metadata.get("pattern")


def invalid_endpoint_name(name: str) -> RuntimeValidationError | None:
    """The runtime's ValidationError for a name its model forbids, worded as the service words
    constraint failures; None for a well-formed name. Call it only once the name was not found:
    a name that breaks these rules can never have been created."""
    longest, pattern = _endpoint_name_rules()
    broken = []
    if longest is not None and len(name) > longest:
        broken.append(f"Member must have length less than or equal to {longest}")
    if pattern and re.fullmatch(pattern, name, re.ASCII) is None:
        broken.append(f"Member must satisfy regular expression pattern: {pattern}")
    if not broken:
        return None
    noun = "error" if len(broken) == 1 else "errors"
    detail = "; ".join(
        f"Value '{name}' at 'endpointName' failed to satisfy constraint: {rule}" for rule in broken
    )
    return RuntimeValidationError(f"{len(broken)} validation {noun} detected: {detail}")
