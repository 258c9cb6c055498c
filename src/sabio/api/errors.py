"""Putting `SabioError`s on the wire in the two shapes botocore parses: JSON 1.1 (`__type`)
for the control plane and rest-json (`x-amzn-ErrorType`) for the runtime."""

from __future__ import annotations

import json
import uuid
from typing import Any

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


def rest_json_error(error: SabioError, rid: str) -> Response:
    body: dict[str, Any] = {"Message": error.message, **error.fields}
    return Response(
        json.dumps(body, default=str),
        status_code=error.status,
        media_type="application/json",
        headers={"x-amzn-RequestId": rid, "x-amzn-ErrorType": error.code},
    )
