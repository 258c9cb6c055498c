"""Checking an endpoint configuration's AsyncInferenceConfig (CreateEndpointConfig)."""

from __future__ import annotations

import re
from typing import Any

from sabio.artifacts.uri import require_s3
from sabio.errors import ValidationError

_TOPIC = re.compile(r"^arn:aws[a-z\-]*:sns:[a-z0-9\-]*:[0-9]{12}:[a-zA-Z0-9_.-]+$")
_TOPIC_KINDS = ("SUCCESS_NOTIFICATION_TOPIC", "ERROR_NOTIFICATION_TOPIC")


def check_async_config(config: dict[str, Any]) -> None:
    """Raise ValidationError for what SageMaker would refuse; the service model has checked
    types, enums and lengths already."""
    output = config.get("OutputConfig") or {}
    path = output.get("S3OutputPath")
    if not path:
        raise ValidationError("AsyncInferenceConfig.OutputConfig.S3OutputPath is required.")
    require_s3(path, "AsyncInferenceConfig.OutputConfig.S3OutputPath")
    if output.get("S3FailurePath"):
        require_s3(output["S3FailurePath"], "AsyncInferenceConfig.OutputConfig.S3FailurePath")
    notification = output.get("NotificationConfig") or {}
    for member in ("SuccessTopic", "ErrorTopic"):
        topic = notification.get(member)
        if topic is not None and not _TOPIC.match(topic):
            raise ValidationError(
                f"Value '{topic}' at 'asyncInferenceConfig.outputConfig.notificationConfig."
                f"{member[0].lower() + member[1:]}' failed to satisfy constraint: Member must "
                "satisfy regular expression pattern: "
                "arn:aws[a-z\\-]*:sns:[a-z0-9\\-]*:[0-9]{12}:[a-zA-Z0-9_.-]+"
            )
    for kind in notification.get("IncludeInferenceResponseIn") or []:
        if kind not in _TOPIC_KINDS:
            raise ValidationError(
                f"IncludeInferenceResponseIn: '{kind}' is not one of {', '.join(_TOPIC_KINDS)}."
            )
    client = config.get("ClientConfig") or {}
    concurrency = client.get("MaxConcurrentInvocationsPerInstance")
    if concurrency is not None and not 1 <= int(concurrency) <= 1000:
        raise ValidationError(
            f"Value '{concurrency}' at 'asyncInferenceConfig.clientConfig."
            "maxConcurrentInvocationsPerInstance' failed to satisfy constraint: Member must "
            "have value between 1 and 1000"
        )
