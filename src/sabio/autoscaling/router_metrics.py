"""`Invocations` and `InvocationsPerInstance` per EndpointName and VariantName, read from the
runtime router's in-memory recorders for the autoscaler.

The recorders keep one-minute buckets; the autoscaler's period may be shorter (seconds, in
tests), so this source samples each recorder's cumulative counters whenever it is asked and
differences the newest sample against the one a period older. A variant the router serves and
that saw no invocation in the window reads 0, not "no data", so an idle endpoint scales in.

A serverless variant's `ServerlessProvisionedConcurrency*` metrics are read the same way from
its concurrency recorder (`sabio.telemetry.serverless_metrics`): executions and utilization are
time-weighted (their `Average` over the window), the invocation counts are summed.

Asynchronous endpoints read as no data, as CloudWatch shows them: they publish no
`Invocations` or `InvocationsPerInstance`, and scale on their backlog instead.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping

from sabio.telemetry.endpoint_metrics import (
    ENDPOINT_DIMENSION,
    INVOCATIONS,
    NAMESPACE,
    PC_EXECUTIONS,
    PC_INVOCATIONS,
    PC_SPILLOVER,
    PC_UTILIZATION,
    PER_INSTANCE,
    PROVISIONED_CONCURRENCY,
    VARIANT_DIMENSION,
    EndpointMetrics,
)

Sample = tuple[float, int, float]
"""(monotonic time, invocations so far, InvocationsPerInstance sum so far)."""
ConcurrencySample = tuple[float, tuple[float, float, float, int, int]]
"""(monotonic time, the concurrency recorder's cumulative figures)."""


class RouterMetricSource:
    """A `sabio.autoscaling.signals.MetricSource`; call it on the server's event loop."""

    def __init__(
        self, metrics: EndpointMetrics, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.metrics = metrics
        self.clock = clock
        self._samples: dict[tuple[str, str, float], deque[Sample]] = {}
        self._concurrency: dict[tuple[str, str, float], deque[ConcurrencySample]] = {}

    def metric_value(
        self,
        namespace: str,
        metric_name: str,
        dimensions: Mapping[str, str],
        statistic: str,
        period_seconds: float,
    ) -> float | None:
        if namespace != NAMESPACE or metric_name not in (
            INVOCATIONS,
            PER_INSTANCE,
            *PROVISIONED_CONCURRENCY,
        ):
            return None
        if set(dimensions) != {ENDPOINT_DIMENSION, VARIANT_DIMENSION}:
            return None
        endpoint, variant = dimensions[ENDPOINT_DIMENSION], dimensions[VARIANT_DIMENSION]
        if metric_name in PROVISIONED_CONCURRENCY:
            return self._provisioned(endpoint, variant, metric_name, statistic, period_seconds)
        key = (endpoint.lower(), variant, period_seconds)
        recorder = self.metrics.find(endpoint, variant)
        if recorder is None or recorder.asynchronous:
            # Asynchronous endpoints publish neither metric (as on AWS): no data to scale on.
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

    def _provisioned(
        self, endpoint: str, variant: str, metric_name: str, statistic: str, period: float
    ) -> float | None:
        key = (endpoint.lower(), variant, period)
        recorder = self.metrics.find(endpoint, variant)
        concurrency = recorder.concurrency if recorder is not None else None
        if recorder is None or recorder.source is None or concurrency is None:
            self._concurrency.pop(key, None)
            return None
        now = self.clock()
        samples = self._concurrency.setdefault(key, deque())
        samples.append((now, concurrency.cumulative()))
        while len(samples) > 2 and samples[1][0] <= now - period:
            samples.popleft()
        if len(samples) < 2:
            return None
        base, latest = samples[0][1], samples[-1][1]
        if metric_name in (PC_INVOCATIONS, PC_SPILLOVER):
            index = 3 if metric_name == PC_INVOCATIONS else 4
            count = float(latest[index] - base[index])
            if statistic == "SampleCount":
                return 1.0
            return count if statistic in ("Sum", "Average", "Maximum", "Minimum") else None
        seconds = latest[0] - base[0]
        if statistic != "Average" or seconds <= 0:
            return None
        index = 1 if metric_name == PC_EXECUTIONS else 2
        assert metric_name in (PC_EXECUTIONS, PC_UTILIZATION)
        return (latest[index] - base[index]) / seconds
