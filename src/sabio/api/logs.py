"""The CloudWatch Logs JSON 1.1 API: `POST /` with `X-Amz-Target: Logs_20140328.<Operation>`.

What `fit(logs=True)`, `sabio logs` and any boto3 `logs` client use to read job and endpoint
output. Thin like the control plane: validate against botocore's `logs` model, call the store
in a thread, shape the reply.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sabio import service_model
from sabio.api.control_plane import Json11Service
from sabio.errors import (
    InvalidParameterError,
)
from sabio.telemetry.logs import LogStore

log = logging.getLogger("sabio.api")

TARGET_PREFIX = "Logs_20140328."
SERVICE = "logs"
MAX_REQUEST_BYTES = 16 * 1024 * 1024

Operation = Callable[[dict[str, Any]], dict[str, Any]]


class LogsApi:
    def __init__(self, store: LogStore, max_request_bytes: int = MAX_REQUEST_BYTES) -> None:
        self.store = store
        self.max_request_bytes = max_request_bytes
        self.operations: dict[str, Operation] = {
            "DescribeLogGroups": self._describe_log_groups,
            "DescribeLogStreams": self._describe_log_streams,
            "GetLogEvents": self._get_log_events,
            "FilterLogEvents": self._filter_log_events,
            "CreateLogGroup": self._create_log_group,
            "CreateLogStream": self._create_log_stream,
            "PutLogEvents": self._put_log_events,
            "DeleteLogGroup": self._delete_log_group,
        }
        # CloudWatch Logs words validation errors as SageMaker does, under its own code.
        self._protocol = Json11Service(
            SERVICE,
            TARGET_PREFIX,
            self.operations,
            max_request_bytes,
            validation_error=lambda error: InvalidParameterError(_as_logs_words(error.message)),
        )

    async def handle(self, request: Request) -> Response:
        return await self._protocol.handle(request)

    # Operations: validated request -> response, run in a worker thread.

    def _describe_log_groups(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("logGroupNamePrefix") and p.get("logGroupNamePattern"):
            raise InvalidParameterError(
                "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters."
            )
        identifiers = p.get("logGroupIdentifiers")
        return self.store.describe_log_groups(
            prefix=p.get("logGroupNamePrefix"),
            pattern=p.get("logGroupNamePattern"),
            names=[group_name(i) for i in identifiers] if identifiers is not None else None,
            limit=p.get("limit", 50),
            token=p.get("nextToken"),
        )

    def _describe_log_streams(self, p: dict[str, Any]) -> dict[str, Any]:
        return self.store.describe_log_streams(
            _group(p),
            prefix=p.get("logStreamNamePrefix"),
            order_by=p.get("orderBy", "LogStreamName"),
            descending=bool(p.get("descending", False)),
            limit=p.get("limit", 50),
            token=p.get("nextToken"),
        )

    def _get_log_events(self, p: dict[str, Any]) -> dict[str, Any]:
        return self.store.get_log_events(
            _group(p),
            p["logStreamName"],
            start_time=p.get("startTime"),
            end_time=p.get("endTime"),
            start_from_head=bool(p.get("startFromHead", False)),
            limit=p.get("limit", 10_000),
            token=p.get("nextToken"),
        )

    def _filter_log_events(self, p: dict[str, Any]) -> dict[str, Any]:
        return self.store.filter_log_events(
            _group(p),
            stream_names=p.get("logStreamNames"),
            stream_prefix=p.get("logStreamNamePrefix"),
            pattern=p.get("filterPattern"),
            start=p.get("startTime"),
            end=p.get("endTime"),
            limit=p.get("limit", 10_000),
            token=p.get("nextToken"),
        )

    def _create_log_group(self, p: dict[str, Any]) -> dict[str, Any]:
        self.store.create_log_group(p["logGroupName"])
        return {}

    def _create_log_stream(self, p: dict[str, Any]) -> dict[str, Any]:
        self.store.create_log_stream(p["logGroupName"], p["logStreamName"])
        return {}

    def _put_log_events(self, p: dict[str, Any]) -> dict[str, Any]:
        events = [(int(e["timestamp"]), str(e["message"])) for e in p["logEvents"]]
        return self.store.put_log_events(p["logGroupName"], p["logStreamName"], events)

    def _delete_log_group(self, p: dict[str, Any]) -> dict[str, Any]:
        self.store.delete_log_group(p["logGroupName"])
        return {}


@functools.cache
def _unanchored_patterns() -> tuple[str, ...]:
    model = service_model.load(SERVICE)
    patterns = {model.shape_for(name).metadata.get("pattern") for name in model.shape_names}
    return tuple(sorted(p for p in patterns if p and not p.startswith("^")))


def _as_logs_words(message: str) -> str:
    """SageMaker quotes a pattern with a leading `^`; CloudWatch Logs quotes it as modelled."""
    for pattern in _unanchored_patterns():
        message = message.replace(f"pattern: ^{pattern}", f"pattern: {pattern}")
    return message


def group_name(identifier: str) -> str:
    """A log group's name from its name or ARN (`arn:aws:logs:<r>:<a>:log-group:<name>[:*]`)."""
    if not identifier.startswith("arn:"):
        return identifier
    parts = identifier.split(":", 6)
    if len(parts) < 7 or parts[2] != "logs" or parts[5] != "log-group":
        raise InvalidParameterError(f"{identifier} is not a log group ARN.")
    name = parts[6]
    return name[:-2] if name.endswith(":*") else name


def _group(p: dict[str, Any]) -> str:
    name, identifier = p.get("logGroupName"), p.get("logGroupIdentifier")
    if name is not None and identifier is not None:
        raise InvalidParameterError(
            "LogGroup name and LogGroup ARN are mutually exclusive parameters."
        )
    if identifier is not None:
        return group_name(identifier)
    if name is None:
        raise InvalidParameterError("Either logGroupName or logGroupIdentifier must be specified.")
    return str(name)
