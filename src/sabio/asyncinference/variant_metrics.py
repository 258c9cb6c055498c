"""The per-variant metrics of asynchronous endpoints, as SageMaker publishes them (namespace
`AWS/SageMaker`, dimensions `EndpointName` and `VariantName`): requests processed, failures by
kind, requests that expired in the queue, how long requests waited and took, and how long
reading their input object and writing their answer took.

The dispatcher records each event as it happens (`count`, `processed`, `timed`), as samples of
a `SampledSeries`: one-minute buckets for the CloudWatch API, lifetime totals for `/metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping

from sabio.telemetry.sampled_series import SampledSeries

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


class AsyncVariantMetrics(SampledSeries):
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

    # What the dispatcher calls, once per event.

    def count(self, endpoint: str, variant: str, *metrics: str) -> None:
        """One event of each of `metrics` (names in `COUNTS`)."""
        for metric in metrics:
            self.sample(endpoint, variant, metric, 1.0)

    def processed(self, endpoint: str, variant: str, received_at: float, started_at: float) -> None:
        """A request the variant finished: `InvocationsProcesssed`, its `TimeInBacklog` (from
        acceptance to being taken up) and `TotalProcessingTime` (from acceptance to now)."""
        now = self.clock()
        self.sample(endpoint, variant, PROCESSED, 1.0, now)
        self.timed(endpoint, variant, TIME_IN_BACKLOG, started_at - received_at, now)
        self.timed(endpoint, variant, TOTAL_PROCESSING_TIME, now - received_at, now)

    def timed(
        self, endpoint: str, variant: str, metric: str, seconds: float, now: float | None = None
    ) -> None:
        """One measurement of `metric` (a name in `TIMES`), taken in seconds."""
        value = max(0.0, seconds) * _PER_SECOND[TIME_UNITS[metric]]
        self.sample(endpoint, variant, metric, value, now)
