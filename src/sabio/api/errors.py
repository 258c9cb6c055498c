"""Putting `SabioError`s on the wire in the two shapes botocore parses: JSON 1.1 (`__type`)
for the control plane and rest-json (`x-amzn-ErrorType`) for the runtime."""

from __future__ import annotations

import json
import uuid

from starlette.responses import Response

from sabio.errors import SabioError

JSON_11 = "application/x-amz-json-1.1"


def request_id() -> str:
    return str(uuid.uuid4())


def json11_error(error: SabioError, rid: str) -> Response:
    body = {"__type": error.code, "message": error.message, **error.fields}
    return Response(
        json.dumps(body, default=str),
        status_code=error.status,
        media_type=JSON_11,
        headers={"x-amzn-RequestId": rid},
    )


def rest_json_error(error: SabioError, rid: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, raw ASGI headers and body: the runtime's hot path sends these directly."""
    body = json.dumps({"Message": error.message, **error.fields}, default=str).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"x-amzn-requestid", rid.encode()),
        (b"x-amzn-errortype", error.code.encode()),
    ]
    return error.status, headers, body
