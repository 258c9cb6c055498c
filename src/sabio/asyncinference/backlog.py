"""The asynchronous inference backlog as SageMaker publishes it (namespace `AWS/SageMaker`,
dimension `EndpointName`): sampled from the queue by the dispatcher about once a second, kept
in memory for three hours, read by the CloudWatch API and by the autoscaler (`MetricSource`)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping

from sabio.asyncinference.queue import Backlog
from sabio.telemetry.endpoint_metrics import (
    ENDPOINT_DIMENSION,
    NAMESPACE,
    Datapoint,
    Statistics,
)

BACKLOG_SIZE = "ApproximateBacklogSize"
BACKLOG_PER_INSTANCE = "ApproximateBacklogSizePerInstance"
OLDEST_AGE = "ApproximateAgeOfOldestRequest"
WITHOUT_CAPACITY = "HasBacklogWithoutCapacity"
RETENTION_SECONDS = 3 * 3600


class BacklogMetrics:
    """Implements `EndpointSeries` (CloudWatch) and `MetricSource` (the autoscaler)."""

    units: Mapping[str, str] = {
        BACKLOG_SIZE: "Count",
        BACKLOG_PER_INSTANCE: "Count",
        OLDEST_AGE: "Seconds",
        WITHOUT_CAPACITY: "None",
    }

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._samples: dict[str, deque[tuple[float, dict[str, float]]]] = {}
        self._names: dict[str, str] = {}

    def record(self, endpoint: str, backlog: Backlog | None, instances: int) -> None:
        """One sample of one asynchronous endpoint (no backlog is a sample of zeros)."""
        now = self.clock()
        size = backlog.size if backlog is not None else 0
        oldest = backlog.oldest_received_at if backlog is not None else None
        values = {
            BACKLOG_SIZE: float(size),
            BACKLOG_PER_INSTANCE: size / instances if instances else float(size),
            OLDEST_AGE: max(0.0, now - oldest) if oldest is not None else 0.0,
            WITHOUT_CAPACITY: 1.0 if size and not instances else 0.0,
        }
        key = endpoint.lower()
        self._names[key] = endpoint
        samples = self._samples.setdefault(key, deque())
        samples.append((now, values))
        while samples and samples[0][0] < now - RETENTION_SECONDS:
            samples.popleft()

    def forget(self, keep: set[str]) -> None:
        """Drop endpoints that are gone (lower-cased names not in `keep`)."""
        for key in [k for k in self._samples if k not in keep]:
            del self._samples[key]
            self._names.pop(key, None)

    # EndpointSeries

    def endpoints(self) -> list[str]:
        return sorted(self._names[k] for k in self._samples)

    def datapoints(
        self, endpoint: str, metric: str, start: float, end: float, period: int
    ) -> list[Datapoint]:
        merged: dict[int, Statistics] = {}
        for at, values in self._samples.get(endpoint.lower(), ()):
            if not start <= at < end:
                continue
            slot = int(start + (at - start) // period * period)
            value = values[metric]
            point = Statistics(1, value, value, value)
            previous = merged.get(slot)
            merged[slot] = point if previous is None else previous.merge(point)
        return [Datapoint(t, merged[t]) for t in sorted(merged)]

    # MetricSource

    def metric_value(
        self,
        namespace: str,
        metric_name: str,
        dimensions: Mapping[str, str],
        statistic: str,
        period_seconds: float,
    ) -> float | None:
        if namespace != NAMESPACE or metric_name not in self.units:
            return None
        if set(dimensions) != {ENDPOINT_DIMENSION}:
            return None
        now = self.clock()
        values = [
            v[metric_name]
            for at, v in self._samples.get(dimensions[ENDPOINT_DIMENSION].lower(), ())
            if at >= now - period_seconds
        ]
        if not values:
            return None
        if statistic == "Average":
            return math.fsum(values) / len(values)
        if statistic == "Sum":
            return math.fsum(values)
        if statistic == "Maximum":
            return max(values)
        if statistic == "Minimum":
            return min(values)
        if statistic == "SampleCount":
            return float(len(values))
        return None
