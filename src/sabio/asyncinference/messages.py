"""The JSON SageMaker publishes to an asynchronous endpoint's SNS topics when a request is
answered (`NotificationConfig.SuccessTopic` / `ErrorTopic`)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

# IncludeInferenceResponseIn: the response goes into the message only up to this size.
MAX_INCLUDED_RESPONSE = 128 * 1024
SUCCESS_TOPIC = "SUCCESS_NOTIFICATION_TOPIC"
ERROR_TOPIC = "ERROR_NOTIFICATION_TOPIC"


def iso_time(epoch: float) -> str:
    """`2022-01-25T22:46:00.608Z`, as the messages carry times."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))
    return f"{whole}.{int(epoch * 1000) % 1000:03d}Z"


def notification(
    *,
    region: str,
    request: dict[str, Any],
    inference_id: str,
    received_at: float,
    succeeded: bool,
    response_content_type: str | None = None,
    failure_reason: str | None = None,
    response: bytes | None = None,
    now: float | None = None,
) -> str:
    """The message for one answered request; `response` is the model's answer (or error body)
    when the topic is named in `IncludeInferenceResponseIn` (and it is small enough)."""
    request_parameters: dict[str, Any] = {"endpointName": request["EndpointName"]}
    if request.get("ContentType"):
        request_parameters["contentType"] = request["ContentType"]
    if request.get("InputLocation"):
        request_parameters["inputLocation"] = request["InputLocation"]
    message: dict[str, Any] = {
        "awsRegion": region,
        "eventTime": iso_time(time.time() if now is None else now),
        "receivedTime": iso_time(received_at),
        "invocationStatus": "Completed" if succeeded else "Failed",
        "requestParameters": request_parameters,
    }
    response_parameters: dict[str, Any] = {}
    if response_content_type:
        response_parameters["contentType"] = response_content_type
    if succeeded:
        response_parameters["outputLocation"] = request["OutputLocation"]
    else:
        message["failureReason"] = failure_reason or "ClientError: The request failed."
        if request.get("FailureLocation"):
            response_parameters["failureLocation"] = request["FailureLocation"]
    if response is not None and len(response) <= MAX_INCLUDED_RESPONSE:
        response_parameters["responseBody"] = _response_body(response)
    if response_parameters:
        message["responseParameters"] = response_parameters
    message.update(
        {
            "inferenceId": inference_id,
            "eventVersion": "1.0",
            "eventSource": "aws:sagemaker",
            "eventName": "InferenceResult",
        }
    )
    return json.dumps(message, separators=(",", ":"))


def _response_body(response: bytes) -> dict[str, str]:
    try:
        return {"content": response.decode("utf-8"), "encoding": "UTF-8"}
    except UnicodeDecodeError:
        return {"content": base64.b64encode(response).decode(), "encoding": "BASE64"}
