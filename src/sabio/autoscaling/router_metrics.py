"""`Invocations` and `InvocationsPerInstance` per EndpointName and VariantName, read from the
runtime router's in-memory recorders for the autoscaler.

The recorders keep one-minute buckets; the autoscaler's period may be shorter (seconds, in
tests), so this source samples each recorder's cumulative counters whenever it is asked and
differences the newest sample against the one a period older. A variant the router serves and
that saw no invocation in the window reads 0, not "no data", so an idle endpoint scales in.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping

from sabio.telemetry.endpoint_metrics import (
    ENDPOINT_DIMENSION,
    INVOCATIONS,
    NAMESPACE,
    PER_INSTANCE,
    VARIANT_DIMENSION,
    EndpointMetrics,
)

Sample = tuple[float, int, float]
"""(monotonic time, invocations so far, InvocationsPerInstance sum so far)."""


class RouterMetricSource:
    """A `sabio.autoscaling.signals.MetricSource`; call it on the server's event loop."""

    def __init__(
        self, metrics: EndpointMetrics, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.metrics = metrics
        self.clock = clock
        self._samples: dict[tuple[str, str, float], deque[Sample]] = {}

    def metric_value(
        self,
        namespace: str,
        metric_name: str,
        dimensions: Mapping[str, str],
        statistic: str,
        period_seconds: float,
    ) -> float | None:
        if namespace != NAMESPACE or metric_name not in (INVOCATIONS, PER_INSTANCE):
            return None
        if set(dimensions) != {ENDPOINT_DIMENSION, VARIANT_DIMENSION}:
            return None
        endpoint, variant = dimensions[ENDPOINT_DIMENSION], dimensions[VARIANT_DIMENSION]
        key = (endpoint.lower(), variant, period_seconds)
        recorder = self.metrics.find(endpoint, variant)
        if recorder is None:
            self._samples.pop(key, None)
            return None
        now = self.clock()
        count, per_instance = recorder.cumulative()
        samples = self._samples.setdefault(key, deque())
        samples.append((now, count, per_instance))
        while len(samples) > 2 and samples[1][0] <= now - period_seconds:
            samples.popleft()
        if len(samples) < 2:
            return None
        _, base_count, base_per_instance = samples[0]
        invocations = count - base_count
        total = (
            float(invocations) if metric_name == INVOCATIONS else per_instance - base_per_instance
        )
        if statistic == "Sum":
            return total
        if statistic == "SampleCount":
            return float(invocations)
        if statistic == "Average":
            return total / invocations if invocations else 0.0
        return None
