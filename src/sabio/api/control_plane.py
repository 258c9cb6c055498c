"""JSON 1.1 services: `POST /` with `X-Amz-Target: <Prefix>.<Operation>`, as the SageMaker
control plane (`SageMaker.`) and CloudWatch Logs (`Logs_20140328.`) are called.

Thin by design: parse, validate against botocore's model, call the service, shape the reply.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sabio import service_model
from sabio.api.errors import JSON_11, json11_error, request_id
from sabio.api.json_body import parse_json
from sabio.api.shapes import shape_output, validate_input
from sabio.asgi_body import content_length, read_capped
from sabio.errors import (
    PayloadTooLargeError,
    SabioError,
    SerializationError,
    UnknownOperationError,
    ValidationError,
)

log = logging.getLogger("sabio.api")

Operation = Callable[[dict[str, Any]], dict[str, Any]]
TARGET_PREFIX = "SageMaker."


class Json11Service:
    """One JSON 1.1 service: its botocore model, its target prefix and its operations."""

    def __init__(
        self,
        service: str,
        target_prefix: str,
        operations: Mapping[str, Operation],
        max_request_bytes: int,
        *,
        validation_error: Callable[[ValidationError], SabioError] | None = None,
    ) -> None:
        self.service = service
        self.target_prefix = target_prefix
        self.operations = dict(operations)
        self.max_request_bytes = max_request_bytes
        self.validation_error = validation_error

    async def handle(self, request: Request) -> Response:
        rid = request_id()
        try:
            return await self._handle(request, rid)
        except SabioError as error:
            return json11_error(error, rid)
        except Exception:
            log.exception("unexpected error in %s", request.headers.get("x-amz-target"))
            return json11_error(SabioError("An internal error occurred; see the server log."), rid)

    async def _handle(self, request: Request, rid: str) -> Response:
        target = request.headers.get("x-amz-target", "")
        if not target.startswith(self.target_prefix):
            raise UnknownOperationError(
                f"Missing or unknown X-Amz-Target header; expected {self.target_prefix}<Operation>."
            )
        name = target[len(self.target_prefix) :]
        model = service_model.operation(name, self.service)
        if model is None:
            raise UnknownOperationError(f"Unknown operation {name}.")
        handler = self.operations.get(name)
        if handler is None:
            raise UnknownOperationError(f"Sabio does not implement the operation {name} yet.")
        too_large = PayloadTooLargeError(
            f"The request body is larger than {self.max_request_bytes} bytes."
        )
        declared = content_length(request.headers.get("content-length"))
        body = await read_capped(request.receive, declared, self.max_request_bytes, too_large)
        params = parse_json(body)
        try:
            validated = validate_input(model, params)
        except ValidationError as error:
            if self.validation_error is None:
                raise
            raise self.validation_error(error) from None
        except RecursionError:
            raise SerializationError("The request body is nested too deeply.") from None
        result = await run_in_threadpool(handler, validated)
        payload = json.dumps(shape_output(model, result), separators=(",", ":"))
        return Response(payload, media_type=JSON_11, headers={"x-amzn-RequestId": rid})


class ControlPlane(Json11Service):
    """The SageMaker control plane."""

    def __init__(self, operations: Mapping[str, Operation], max_request_bytes: int) -> None:
        super().__init__(service_model.SAGEMAKER, TARGET_PREFIX, operations, max_request_bytes)
