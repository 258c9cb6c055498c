"""The per-variant metrics of asynchronous endpoints, as SageMaker publishes them (namespace
`AWS/SageMaker`, dimensions `EndpointName` and `VariantName`): requests processed, failures by
kind, requests that expired in the queue, how long requests waited and took, and how long
reading their input object and writing their answer took.

The dispatcher records each event as it happens (`count`, `processed`, `timed`): a few additions
to the open one-minute bucket of the (endpoint, variant), on the event loop, so no lock. Buckets
are kept for three hours for the CloudWatch API; lifetime totals feed `/metrics`. Nothing is
persisted: a restart starts from zero, as for the other endpoint metrics.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping

from sabio.telemetry.endpoint_metrics import (
    PERIOD_SECONDS,
    RETENTION_SECONDS,
    Datapoint,
    Statistics,
)

PROCESSED = "InvocationsProcesssed"  # sic: SageMaker's own spelling
REQUEST_DOWNLOAD_FAILURES = "RequestDownloadFailures"
RESPONSE_UPLOAD_FAILURES = "ResponseUploadFailures"
NOTIFICATION_FAILURES = "NotificationFailures"
INVOCATION_FAILURES = "InvocationFailures"
EXPIRED_REQUESTS = "ExpiredRequests"
TIME_IN_BACKLOG = "TimeInBacklog"
TOTAL_PROCESSING_TIME = "TotalProcessingTime"
REQUEST_DOWNLOAD_LATENCY = "RequestDownloadLatency"
RESPONSE_UPLOAD_LATENCY = "ResponseUploadLatency"

COUNTS = (
    PROCESSED,
    REQUEST_DOWNLOAD_FAILURES,
    RESPONSE_UPLOAD_FAILURES,
    NOTIFICATION_FAILURES,
    INVOCATION_FAILURES,
    EXPIRED_REQUESTS,
)
"""Metrics of which each event is one sample of 1 (only `Sum` means much, as AWS says)."""
TIMES = (TIME_IN_BACKLOG, TOTAL_PROCESSING_TIME, REQUEST_DOWNLOAD_LATENCY, RESPONSE_UPLOAD_LATENCY)
"""Metrics of which each measurement is one sample, in the unit AWS documents for it."""
TIME_UNITS = {
    TIME_IN_BACKLOG: "Microseconds",
    TOTAL_PROCESSING_TIME: "Milliseconds",
    REQUEST_DOWNLOAD_LATENCY: "Microseconds",
    RESPONSE_UPLOAD_LATENCY: "Microseconds",
}
_PER_SECOND = {"Milliseconds": 1e3, "Microseconds": 1e6}
_INDEX = {name: index for index, name in enumerate(COUNTS)}
_TIME_INDEX = {name: index for index, name in enumerate(TIMES)}


class _Bucket:
    """One period of one variant: event counts and the two times' count, sum, min and max."""

    __slots__ = ("counts", "start", "times")

    def __init__(self, start: int) -> None:
        self.start = start
        self.counts = [0] * len(COUNTS)
        self.times = [[0.0, 0.0, 0.0, 0.0] for _ in TIMES]

    def statistics(self, metric: str) -> Statistics | None:
        index = _INDEX.get(metric)
        if index is not None:
            count = self.counts[index]
            return Statistics(count, float(count), 1.0, 1.0) if count else None
        n, total, low, high = self.times[_TIME_INDEX[metric]]
        return Statistics(int(n), total, low, high) if n else None


class _Recorder:
    __slots__ = ("buckets", "endpoint", "time_totals", "totals", "variant")

    def __init__(self, endpoint: str, variant: str) -> None:
        self.endpoint = endpoint
        self.variant = variant
        self.buckets: deque[_Bucket] = deque()
        self.totals = [0] * len(COUNTS)
        self.time_totals = [[0.0, 0.0] for _ in TIMES]


class AsyncVariantMetrics:
    """Implements `VariantSeries`: the CloudWatch API reads its datapoints and `/metrics` its
    lifetime totals."""

    units: Mapping[str, str] = {**dict.fromkeys(COUNTS, "Count"), **TIME_UNITS}
    exposed: Mapping[str, tuple[str, str]] = {
        PROCESSED: (
            "sabio_async_invocations_processed_total",
            "Asynchronous requests a variant finished (answer or error object written).",
        ),
        REQUEST_DOWNLOAD_FAILURES: (
            "sabio_async_request_download_failures_total",
            "Asynchronous requests whose input object could not be read.",
        ),
        RESPONSE_UPLOAD_FAILURES: (
            "sabio_async_response_upload_failures_total",
            "Answers or error objects of asynchronous requests that could not be written.",
        ),
        NOTIFICATION_FAILURES: (
            "sabio_async_notification_failures_total",
            "Results of asynchronous requests that could not be published to their SNS topic.",
        ),
        INVOCATION_FAILURES: (
            "sabio_async_invocation_failures_total",
            "Attempts at asynchronous requests that failed for any reason.",
        ),
        EXPIRED_REQUESTS: (
            "sabio_async_expired_requests_total",
            "Asynchronous requests that waited in the queue past their RequestTTLSeconds.",
        ),
        TIME_IN_BACKLOG: (
            "sabio_async_time_in_backlog_seconds",
            "Time asynchronous requests waited in the queue before a variant took them up.",
        ),
        TOTAL_PROCESSING_TIME: (
            "sabio_async_total_processing_seconds",
            "Time from accepting an asynchronous request to its answer and notification.",
        ),
        REQUEST_DOWNLOAD_LATENCY: (
            "sabio_async_request_download_latency_seconds",
            "Time reading the input objects of asynchronous requests took.",
        ),
        RESPONSE_UPLOAD_LATENCY: (
            "sabio_async_response_upload_latency_seconds",
            "Time writing the answer or error objects of asynchronous requests took.",
        ),
    }

    def __init__(
        self,
        period_seconds: int = PERIOD_SECONDS,
        retention_seconds: int = RETENTION_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.period = period_seconds
        self.retention = retention_seconds
        self.clock = clock
        self._recorders: dict[tuple[str, str], _Recorder] = {}

    # What the dispatcher calls, once per event.

    def count(self, endpoint: str, variant: str, *metrics: str) -> None:
        """One event of each of `metrics` (names in `COUNTS`)."""
        recorder, bucket = self._open(endpoint, variant)
        for metric in metrics:
            index = _INDEX[metric]
            bucket.counts[index] += 1
            recorder.totals[index] += 1

    def processed(self, endpoint: str, variant: str, received_at: float, started_at: float) -> None:
        """A request the variant finished: `InvocationsProcesssed`, its `TimeInBacklog` (from
        acceptance to being taken up) and `TotalProcessingTime` (from acceptance to now)."""
        now = self.clock()
        recorder, bucket = self._open(endpoint, variant, now)
        recorder.totals[0] += 1
        bucket.counts[0] += 1
        self._sample(recorder, bucket, TIME_IN_BACKLOG, started_at - received_at)
        self._sample(recorder, bucket, TOTAL_PROCESSING_TIME, now - received_at)

    def timed(self, endpoint: str, variant: str, metric: str, seconds: float) -> None:
        """One measurement of `metric` (a name in `TIMES`), taken in seconds."""
        recorder, bucket = self._open(endpoint, variant)
        self._sample(recorder, bucket, metric, seconds)

    @staticmethod
    def _sample(recorder: _Recorder, bucket: _Bucket, metric: str, seconds: float) -> None:
        index = _TIME_INDEX[metric]
        value = max(0.0, seconds) * _PER_SECOND[TIME_UNITS[metric]]
        cell = bucket.times[index]
        if not cell[0] or value < cell[2]:
            cell[2] = value
        if not cell[0] or value > cell[3]:
            cell[3] = value
        cell[0] += 1
        cell[1] += value
        total = recorder.time_totals[index]
        total[0] += 1
        total[1] += value

    def _open(
        self, endpoint: str, variant: str, now: float | None = None
    ) -> tuple[_Recorder, _Bucket]:
        key = (endpoint.lower(), variant)
        recorder = self._recorders.get(key)
        if recorder is None:
            recorder = self._recorders[key] = _Recorder(endpoint, variant)
        recorder.endpoint = endpoint
        start = int((self.clock() if now is None else now) // self.period * self.period)
        buckets = recorder.buckets
        if not buckets or buckets[-1].start < start:
            buckets.append(_Bucket(start))
            while buckets[0].start < start - self.retention:
                buckets.popleft()
        return recorder, buckets[-1]

    # VariantSeries: what the CloudWatch API and `/metrics` read.

    def variants(self) -> list[tuple[str, str]]:
        """(endpoint, variant) with figures in the retention window; drops the others."""
        horizon = self._horizon()
        for key, recorder in list(self._recorders.items()):
            if not recorder.buckets or recorder.buckets[-1].start < horizon:
                del self._recorders[key]
        return sorted((r.endpoint, r.variant) for r in self._recorders.values())

    def datapoints(
        self, endpoint: str, variant: str, metric: str, start: float, end: float, period: int
    ) -> list[Datapoint]:
        """As `EndpointMetrics.datapoints`: each bucket in the period that holds its start."""
        recorder = self._recorders.get((endpoint.lower(), variant))
        if recorder is None or recorder.endpoint != endpoint or metric not in self.units:
            return []
        since = max(start, self._horizon())
        merged: dict[int, Statistics] = {}
        for bucket in recorder.buckets:
            if not since <= bucket.start < end:
                continue
            stats = bucket.statistics(metric)
            if stats is None:
                continue
            slot = int(start + (bucket.start - start) // period * period)
            previous = merged.get(slot)
            merged[slot] = stats if previous is None else previous.merge(stats)
        return [Datapoint(t, merged[t]) for t in sorted(merged)]

    def lifetime(self) -> list[tuple[str, str, Mapping[str, Statistics]]]:
        """Every variant's figures since the server started: sample count and sum per metric
        (minimum and maximum are not kept over the lifetime and read 0)."""
        found: list[tuple[str, str, Mapping[str, Statistics]]] = []
        for endpoint, variant in self.variants():
            recorder = self._recorders[(endpoint.lower(), variant)]
            figures = {
                metric: Statistics(n, float(n), 0.0, 0.0)
                for metric, n in zip(COUNTS, recorder.totals, strict=True)
            }
            for metric, (n, total) in zip(TIMES, recorder.time_totals, strict=True):
                figures[metric] = Statistics(int(n), total, 0.0, 0.0)
            found.append((endpoint, variant, figures))
        return found

    def _horizon(self) -> float:
        return (self.clock() - self.retention) // self.period * self.period
