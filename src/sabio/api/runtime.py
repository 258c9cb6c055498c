"""The SageMaker runtime (rest-json): `POST /endpoints/{name}/invocations` and friends."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from sabio.api.body import read_capped
from sabio.api.errors import request_id, rest_json_error
from sabio.errors import (
    InternalFailureError,
    RuntimePayloadTooLargeError,
    RuntimeValidationError,
    SabioError,
)
from sabio.serving.router import Router

log = logging.getLogger("sabio.api")


class Runtime:
    def __init__(self, router: Router, max_invocation_bytes: int) -> None:
        self.router = router
        self.max_bytes = max_invocation_bytes
        self.too_large = RuntimePayloadTooLargeError(
            f"Received payload larger than the maximum of {max_invocation_bytes} bytes "
            "for InvokeEndpoint."
        )

    async def invoke(self, request: Request) -> Response:
        rid = request_id()
        try:
            body = await read_capped(request, self.max_bytes, self.too_large)
            headers = request.headers
            result = await self.router.invoke(
                request.path_params["name"],
                body,
                headers,
                headers.get("x-amzn-sagemaker-target-variant"),
            )
        except SabioError as error:
            return rest_json_error(error, rid)
        except Exception:
            log.exception("unexpected error invoking %s", request.path_params["name"])
            return rest_json_error(InternalFailureError("An internal error occurred."), rid)
        response_headers = {
            "Content-Type": result.content_type,
            "x-Amzn-Invoked-Production-Variant": result.variant,
            "x-amzn-RequestId": rid,
        }
        if result.custom_attributes is not None:
            response_headers["X-Amzn-SageMaker-Custom-Attributes"] = result.custom_attributes
        return Response(result.body, headers=response_headers)

    async def not_supported(self, request: Request) -> Response:
        operation = {
            "async-invocations": "InvokeEndpointAsync",
            "invocations-response-stream": "InvokeEndpointWithResponseStream",
        }.get(request.url.path.rsplit("/", 1)[-1], request.url.path)
        error = RuntimeValidationError(f"Sabio does not implement {operation} yet.")
        return rest_json_error(error, request_id())
