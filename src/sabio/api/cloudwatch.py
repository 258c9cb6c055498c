"""The CloudWatch metrics API, for namespace `AWS/SageMaker` (the endpoint invocation metrics),
and the Prometheus `GET /metrics` page.

botocore speaks CloudWatch in the first protocol of its model's list that it supports:
`smithy-rpc-v2-cbor` in botocore 1.44 (`POST /service/GraniteServiceVersion20100801/operation/
<Operation>`, header `smithy-protocol: rpc-v2-cbor`, CBOR bodies with timestamps as tag 1).
The `json` protocol (awsJson1_0: `POST /` with `X-Amz-Target: GraniteServiceVersion20100801.
<Operation>`) is served too. CloudWatch is "query compatible": errors carry the old query error
code in `x-amzn-query-error`, which botocore reports as the error's code.

Thin like the other adapters: decode, validate against botocore's `cloudwatch` model, compute
from `sabio.telemetry.endpoint_metrics`, shape the reply by the model. The operations run on the
event loop, not in a thread: they read the recorders the invocation path writes, which is safe
only there, and they are cheap (at most a few hundred buckets per variant).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import cbor2
from botocore.model import OperationModel, Shape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sabio import service_model
from sabio.api.errors import request_id
from sabio.api.json_body import parse_json
from sabio.api.shapes import shape_output, validate_input
from sabio.asgi_body import content_length, read_capped
from sabio.errors import SabioError, SerializationError, ValidationError
from sabio.telemetry import prometheus
from sabio.telemetry.endpoint_metrics import (
    ENDPOINT_DIMENSION,
    NAMESPACE,
    UNITS,
    VARIANT_DIMENSION,
    Datapoint,
    EndpointMetrics,
    Statistics,
)

log = logging.getLogger("sabio.api")

SERVICE = "cloudwatch"
TARGET_PREFIX = "GraniteServiceVersion20100801."
RPC_V2_PATH = "/service/GraniteServiceVersion20100801/operation/{operation}"
CBOR = "application/cbor"
JSON_10 = "application/x-amz-json-1.0"
MAX_REQUEST_BYTES = 1024 * 1024

STATISTICS: dict[str, Callable[[Statistics], float]] = {
    "SampleCount": lambda s: float(s.sample_count),
    "Average": lambda s: s.average,
    "Sum": lambda s: s.sum,
    "Minimum": lambda s: s.minimum,
    "Maximum": lambda s: s.maximum,
}
MAX_STATISTICS_DATAPOINTS = 1440
MAX_QUERIES = 500
DEFAULT_MAX_DATAPOINTS = 100_800
LIST_PAGE = 500
_HIGH_RESOLUTION_PERIODS = (1, 5, 10, 20, 30)
_METRIC_ID = re.compile(r"[a-z][a-zA-Z0-9_]*")

Operation = Callable[[dict[str, Any]], dict[str, Any]]


# Errors, as the cloudwatch model defines them: `code` is the query error code botocore reports.


class CloudWatchError(SabioError):
    shape = ""
    """The modelled error shape, sent as `__type`; the code when empty."""
    fault = "Sender"


class InvalidParameterValueError(CloudWatchError):
    code = "InvalidParameterValue"
    shape = "InvalidParameterValueException"
    status = 400


class MissingParameterError(CloudWatchError):
    code = "MissingParameter"
    shape = "MissingRequiredParameterException"
    status = 400


class InvalidParameterCombinationError(CloudWatchError):
    code = "InvalidParameterCombination"
    shape = "InvalidParameterCombinationException"
    status = 400


class InvalidNextTokenError(CloudWatchError):
    code = "InvalidNextToken"
    shape = "InvalidNextToken"
    status = 400


class CloudWatchValidationError(CloudWatchError):
    code = "ValidationError"
    status = 400


class InternalServiceError(CloudWatchError):
    code = "InternalServiceError"
    shape = "InternalServiceFault"
    status = 500
    fault = "Receiver"


class UnknownOperationError(CloudWatchError):
    code = "UnknownOperationException"
    status = 400


# The two wire formats.


class _Wire:
    content_type = JSON_10
    headers: Mapping[str, str] = {}

    def decode(self, body: bytes) -> object:
        return parse_json(body)

    def encode(self, shape: Shape | None, data: dict[str, Any]) -> bytes:
        return json.dumps(data, separators=(",", ":")).encode()


class _Cbor(_Wire):
    content_type = CBOR
    headers = {"smithy-protocol": "rpc-v2-cbor"}

    def decode(self, body: bytes) -> object:
        if not body:
            return {}
        try:
            return cbor2.loads(body)
        except (cbor2.CBORDecodeError, ValueError, TypeError) as exc:
            raise SerializationError(f"The request body is not valid CBOR: {exc}") from None

    def encode(self, shape: Shape | None, data: dict[str, Any]) -> bytes:
        return cbor2.dumps(_tag_timestamps(shape, data) if shape is not None else data)


_JSON = _Wire()
_CBOR_WIRE = _Cbor()


def _tag_timestamps(shape: Shape, value: Any) -> Any:
    """Shaped output (timestamps as epoch seconds) with each timestamp as CBOR tag 1."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = shape.members
        return {k: _tag_timestamps(members[k], v) if k in members else v for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [_tag_timestamps(shape.member, item) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _tag_timestamps(shape.value, v) for k, v in value.items()}
    if kind == "timestamp" and isinstance(value, int | float):
        return cbor2.CBORTag(1, int(value) if float(value).is_integer() else float(value))
    return value


class CloudWatchApi:
    """`GetMetricStatistics`, `GetMetricData` and `ListMetrics` over the endpoint metrics, and
    the metric alarms that drive step scaling (`sabio.autoscaling.alarms`)."""

    def __init__(
        self,
        metrics: EndpointMetrics,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        account_id: str = "123456789012",
        alarms: Mapping[str, Operation] | None = None,
    ) -> None:
        self.metrics = metrics
        self.max_request_bytes = max_request_bytes
        self.account_id = account_id
        self.operations: dict[str, Operation] = {
            "GetMetricStatistics": self._get_metric_statistics,
            "GetMetricData": self._get_metric_data,
            "ListMetrics": self._list_metrics,
        }
        # Alarm operations read and write the metadata store: they run in a thread.
        self.blocking = dict(alarms or {})
        self.operations.update(self.blocking)

    # HTTP handlers

    async def handle_rpc_v2(self, request: Request) -> Response:
        """`POST /service/GraniteServiceVersion20100801/operation/<Operation>` (CBOR)."""
        return await self._handle(request, request.path_params["operation"], _CBOR_WIRE)

    async def handle_json(self, request: Request) -> Response:
        """`POST /` with `X-Amz-Target: GraniteServiceVersion20100801.<Operation>` (JSON 1.0)."""
        target = request.headers.get("x-amz-target", "")
        return await self._handle(request, target.removeprefix(TARGET_PREFIX), _JSON)

    async def prometheus(self, _: Request) -> Response:
        """`GET /metrics`: the Prometheus text format."""
        return Response(prometheus.render(self.metrics), media_type=prometheus.CONTENT_TYPE)

    async def _handle(self, request: Request, name: str, wire: _Wire) -> Response:
        rid = request_id()
        try:
            model = service_model.operation(name, SERVICE)
            if model is None:
                raise UnknownOperationError(f"Unknown operation {name}.")
            handler = self.operations.get(name)
            if handler is None:
                raise UnknownOperationError(
                    f"Sabio does not implement the CloudWatch operation {name}; it serves "
                    "GetMetricStatistics, GetMetricData and ListMetrics for AWS/SageMaker, and "
                    "PutMetricAlarm, DescribeAlarms and DeleteAlarms."
                )
            too_large = CloudWatchValidationError(
                f"The request body is larger than {self.max_request_bytes} bytes."
            )
            declared = content_length(request.headers.get("content-length"))
            body = await read_capped(request.receive, declared, self.max_request_bytes, too_large)
            params = _validated(model, wire.decode(body))
            if name in self.blocking:
                outcome = await run_in_threadpool(handler, params)
            else:
                outcome = handler(params)
            result = shape_output(model, outcome)
            return Response(
                wire.encode(model.output_shape, result),
                media_type=wire.content_type,
                headers={**wire.headers, "x-amzn-RequestId": rid},
            )
        except SabioError as error:
            return _error(wire, error, rid)
        except Exception:
            log.exception("unexpected error in CloudWatch %s", name)
            return _error(wire, InternalServiceError("An internal error occurred."), rid)

    # Operations: validated request -> response.

    def _get_metric_statistics(self, p: dict[str, Any]) -> dict[str, Any]:
        statistics: list[str] = p.get("Statistics") or []
        if not statistics and not p.get("ExtendedStatistics"):
            raise InvalidParameterCombinationError(
                "Must specify either Statistics or ExtendedStatistics."
            )
        if p.get("ExtendedStatistics"):
            raise InvalidParameterValueError(
                "Sabio keeps no percentiles of endpoint metrics: ExtendedStatistics are not "
                "supported. Ask for SampleCount, Average, Sum, Minimum or Maximum."
            )
        period = _period(p["Period"], "Period")
        start, end = _window(p["StartTime"], p["EndTime"], period)
        requested = math.ceil((end - start) / period)
        if requested > MAX_STATISTICS_DATAPOINTS:
            raise InvalidParameterCombinationError(
                f"You have requested up to {requested} datapoints, which exceeds the limit of "
                f"{MAX_STATISTICS_DATAPOINTS}. You may reduce the datapoints requested by "
                "increasing Period, or decreasing the time range."
            )
        unit, points = self._series(p, p.get("Unit"), start, end, period)
        datapoints = []
        for point in points:
            datapoint: dict[str, Any] = {"Timestamp": point.timestamp, "Unit": unit}
            for statistic in statistics:
                datapoint[statistic] = STATISTICS[statistic](point.statistics)
            datapoints.append(datapoint)
        return {"Label": p["MetricName"], "Datapoints": datapoints}

    def _get_metric_data(self, p: dict[str, Any]) -> dict[str, Any]:
        queries: list[dict[str, Any]] = p["MetricDataQueries"]
        if not 1 <= len(queries) <= MAX_QUERIES:
            raise CloudWatchValidationError(
                f"The collection MetricDataQueries must contain between 1 and {MAX_QUERIES} "
                "queries."
            )
        seen: set[str] = set()
        for index, query in enumerate(queries, 1):
            _check_query(query, index, seen)
        if p["StartTime"] >= p["EndTime"]:
            raise CloudWatchValidationError(
                "The parameter StartTime must be less than the parameter EndTime."
            )
        results = []
        for query in queries:
            if not query.get("ReturnData", True):
                continue
            stat = query["MetricStat"]
            period = stat["Period"]
            start, end = _window(p["StartTime"], p["EndTime"], period)
            _, points = self._series(stat["Metric"], stat.get("Unit"), start, end, period)
            compute = STATISTICS[stat["Stat"]]
            values = [(point.timestamp, compute(point.statistics)) for point in points]
            if p.get("ScanBy", "TimestampDescending") == "TimestampDescending":
                values.reverse()
            label = query.get("Label") or stat["Metric"].get("MetricName") or query["Id"]
            results.append((query["Id"], label, values))
        return _page_results(results, p.get("NextToken"), p.get("MaxDatapoints"))

    def _list_metrics(self, p: dict[str, Any]) -> dict[str, Any]:
        namespace, name = p.get("Namespace"), p.get("MetricName")
        filters: list[dict[str, str]] = p.get("Dimensions") or []
        metrics: list[dict[str, Any]] = []
        if namespace in (None, NAMESPACE):
            for dimensions, names in self._published():
                if not all(
                    f["Name"] in dimensions and f.get("Value") in (None, dimensions[f["Name"]])
                    for f in filters
                ):
                    continue
                metrics.extend(
                    {
                        "Namespace": NAMESPACE,
                        "MetricName": metric,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                    }
                    for metric in names
                    if name in (None, metric)
                )
        offset = _token_numbers(p.get("NextToken"), 1)[0] if p.get("NextToken") else 0
        page = metrics[offset : offset + LIST_PAGE]
        result: dict[str, Any] = {"Metrics": page}
        if offset + LIST_PAGE < len(metrics):
            result["NextToken"] = _token(offset + LIST_PAGE)
        if p.get("IncludeLinkedAccounts"):
            result["OwningAccounts"] = [self.account_id] * len(page)
        return result

    def _published(self) -> Iterator[tuple[dict[str, str], Iterable[str]]]:
        """Each set of dimensions Sabio publishes metrics under, with those metrics' names:
        the router's variants, then the endpoint-wide and per-variant series of other parts."""
        for recorder in self.metrics.active():
            variant = {ENDPOINT_DIMENSION: recorder.endpoint, VARIANT_DIMENSION: recorder.variant}
            yield variant, recorder.metric_names()
        for series in self.metrics.endpoint_series:
            for endpoint in series.endpoints():
                yield {ENDPOINT_DIMENSION: endpoint}, series.units
        for variant_series in self.metrics.variant_series:
            for endpoint, name in variant_series.variants():
                variant = {ENDPOINT_DIMENSION: endpoint, VARIANT_DIMENSION: name}
                yield variant, variant_series.units

    def _series(
        self,
        metric: Mapping[str, Any],
        unit: str | None,
        start: float,
        end: float,
        period: int,
    ) -> tuple[str, list[Datapoint]]:
        """A metric's unit and datapoints; none for what Sabio does not publish (another
        namespace or metric, other dimensions, another unit), as CloudWatch answers then."""
        name = metric.get("MetricName", "")
        known = UNITS.get(name)
        dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions") or []}
        if metric.get("Namespace") == NAMESPACE and set(dimensions) == {ENDPOINT_DIMENSION}:
            for series in self.metrics.endpoint_series:
                if name in series.units and unit in (None, series.units[name]):
                    points = series.datapoints(
                        dimensions[ENDPOINT_DIMENSION], name, start, end, period
                    )
                    return series.units[name], points
        if metric.get("Namespace") == NAMESPACE and set(dimensions) == {
            ENDPOINT_DIMENSION,
            VARIANT_DIMENSION,
        }:
            for variant_series in self.metrics.variant_series:
                if name in variant_series.units and unit in (None, variant_series.units[name]):
                    points = variant_series.datapoints(
                        dimensions[ENDPOINT_DIMENSION],
                        dimensions[VARIANT_DIMENSION],
                        name,
                        start,
                        end,
                        period,
                    )
                    return variant_series.units[name], points
        if metric.get("Namespace") != NAMESPACE or known is None:
            return unit or "None", []
        if unit is not None and unit != known:
            return unit, []
        if set(dimensions) != {ENDPOINT_DIMENSION, VARIANT_DIMENSION}:
            return known, []
        return known, self.metrics.datapoints(
            dimensions[ENDPOINT_DIMENSION],
            dimensions[VARIANT_DIMENSION],
            name,
            start,
            end,
            period,
        )


def _validated(model: OperationModel, params: object) -> dict[str, Any]:
    shape = model.input_shape
    if isinstance(params, dict) and shape is not None:
        for member in shape.required_members:
            if params.get(member) is None:
                raise MissingParameterError(f"The parameter {member} is required.")
    try:
        return validate_input(model, params)
    except ValidationError as error:
        raise CloudWatchValidationError(error.message) from None


def _check_query(query: dict[str, Any], index: int, seen: set[str]) -> None:
    where = f"MetricDataQueries.member.{index}"
    query_id = query["Id"]
    if not _METRIC_ID.fullmatch(query_id):
        raise CloudWatchValidationError(
            f"The value {query_id} for parameter {where}.Id is not valid: it must start with a "
            "lowercase letter and contain only letters, digits and underscores."
        )
    if query_id in seen:
        raise CloudWatchValidationError(
            f"The value {query_id} for parameter {where}.Id is not unique."
        )
    seen.add(query_id)
    if query.get("Expression") is not None:
        raise CloudWatchValidationError(
            f"Sabio does not evaluate metric math: the query {query_id} has an Expression. "
            "Use MetricStat queries."
        )
    stat = query.get("MetricStat")
    if stat is None:
        raise CloudWatchValidationError(f"The query {query_id} must have a MetricStat.")
    if stat["Stat"] not in STATISTICS:
        raise CloudWatchValidationError(
            f"The statistic {stat['Stat']} of query {query_id} is not supported; Sabio computes "
            "SampleCount, Average, Sum, Minimum and Maximum."
        )
    _period(stat["Period"], f"{where}.MetricStat.Period")


def _period(period: int, where: str) -> int:
    if period in _HIGH_RESOLUTION_PERIODS or period % 60 == 0:
        return period
    raise InvalidParameterValueError(
        f"The parameter {where} must be 1, 5, 10, 20, 30, 60 or a multiple of 60."
    )


def _window(start: float, end: float, period: int) -> tuple[float, float]:
    """StartTime rounded down as CloudWatch rounds it: to the period if it is under a minute,
    else to the minute, or to 5 minutes if StartTime is over 15 days ago, or to the hour if
    over 63 days ago."""
    if start >= end:
        raise InvalidParameterValueError(
            "The parameter StartTime must be less than the parameter EndTime."
        )
    if period < 60:
        step = period
    else:
        age = time.time() - start
        step = 60 if age < 15 * 86400 else 300 if age < 63 * 86400 else 3600
    return start // step * step, end


def _page_results(
    results: list[tuple[str, str, list[tuple[int, float]]]],
    token: str | None,
    max_datapoints: int | None,
) -> dict[str, Any]:
    """One page of GetMetricData results: at most `max_datapoints` values, resumed at the query
    and position `token` names."""
    query, offset = _token_numbers(token, 2) if token else (0, 0)
    if query > len(results) or (query < len(results) and offset > len(results[query][2])):
        raise InvalidNextTokenError("The NextToken is not valid.")
    budget = max_datapoints if max_datapoints and max_datapoints > 0 else DEFAULT_MAX_DATAPOINTS
    page: list[dict[str, Any]] = []
    next_token = None
    for index in range(query, len(results)):
        query_id, label, values = results[index]
        first = offset if index == query else 0
        taken = values[first : first + budget]
        budget -= len(taken)
        more = first + len(taken) < len(values)
        page.append(
            {
                "Id": query_id,
                "Label": label,
                "Timestamps": [t for t, _ in taken],
                "Values": [v for _, v in taken],
                "StatusCode": "PartialData" if more else "Complete",
            }
        )
        if more:
            next_token = _token(index, first + len(taken))
            break
        if budget == 0 and index + 1 < len(results):
            next_token = _token(index + 1, 0)
            break
    response: dict[str, Any] = {"MetricDataResults": page, "Messages": []}
    if next_token is not None:
        response["NextToken"] = next_token
    return response


def _token(*numbers: int) -> str:
    return base64.urlsafe_b64encode(".".join(map(str, numbers)).encode()).decode()


def _token_numbers(token: str | None, count: int) -> list[int]:
    try:
        parts = base64.urlsafe_b64decode((token or "").encode()).decode().split(".")
        numbers = [int(part) for part in parts]
    except (binascii.Error, ValueError, UnicodeDecodeError):
        numbers = []
    if len(numbers) != count or any(n < 0 for n in numbers):
        raise InvalidNextTokenError("The NextToken is not valid.")
    return numbers


def _error(wire: _Wire, error: SabioError, rid: str) -> Response:
    shape = getattr(error, "shape", "") or error.code
    fault = getattr(error, "fault", "Receiver" if error.status >= 500 else "Sender")
    body = {"__type": shape, "message": error.message, **error.fields}
    return Response(
        wire.encode(None, body),
        status_code=error.status,
        media_type=wire.content_type,
        headers={
            **wire.headers,
            "x-amzn-RequestId": rid,
            "x-amzn-query-error": f"{error.code};{fault}",
        },
    )
