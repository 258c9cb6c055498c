"""Per-variant metrics that another part of the server samples (asynchronous inference's,
multi-model endpoints'), kept in memory as a `VariantSeries`.

Each sample goes into the open one-minute bucket of its (EndpointName, VariantName) and into
that variant's lifetime totals; buckets are kept for three hours for the CloudWatch API, totals
feed `/metrics`. Samples are taken on the event loop, so no lock. Nothing is persisted: a
restart starts from zero, as for the other endpoint metrics.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sabio.telemetry.endpoint_metrics import (
    PERIOD_SECONDS,
    RETENTION_SECONDS,
    Datapoint,
    Statistics,
)


@dataclass
class _Recorder:
    endpoint: str
    variant: str
    buckets: deque[tuple[int, dict[str, Statistics]]] = field(default_factory=deque)
    totals: dict[str, Statistics] = field(default_factory=dict)


class SampledSeries:
    """Implements `VariantSeries` for the metrics named in `units` (with the `/metrics`
    families in `exposed`); subclasses add the calls that take their samples."""

    units: Mapping[str, str]
    exposed: Mapping[str, tuple[str, str]]

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

    def sample(
        self, endpoint: str, variant: str, metric: str, value: float, now: float | None = None
    ) -> None:
        """One sample of `metric` (a name in `units`, in its unit)."""
        key = (endpoint.lower(), variant)
        recorder = self._recorders.get(key)
        if recorder is None:
            recorder = self._recorders[key] = _Recorder(endpoint, variant)
        recorder.endpoint = endpoint
        start = int((self.clock() if now is None else now) // self.period * self.period)
        buckets = recorder.buckets
        if not buckets or buckets[-1][0] < start:
            buckets.append((start, {}))
            while buckets[0][0] < start - self.retention:
                buckets.popleft()
        one = Statistics(1, value, value, value)
        figures = buckets[-1][1]
        previous = figures.get(metric)
        figures[metric] = one if previous is None else previous.merge(one)
        total = recorder.totals.get(metric)
        recorder.totals[metric] = one if total is None else total.merge(one)

    # VariantSeries: what the CloudWatch API and `/metrics` read.

    def variants(self) -> list[tuple[str, str]]:
        """(endpoint, variant) with figures in the retention window; drops the others."""
        horizon = self._horizon()
        for key, recorder in list(self._recorders.items()):
            if not recorder.buckets or recorder.buckets[-1][0] < horizon:
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
        for bucket_start, figures in recorder.buckets:
            stats = figures.get(metric)
            if stats is None or not since <= bucket_start < end:
                continue
            slot = int(start + (bucket_start - start) // period * period)
            previous = merged.get(slot)
            merged[slot] = stats if previous is None else previous.merge(stats)
        return [Datapoint(t, merged[t]) for t in sorted(merged)]

    def lifetime(self) -> list[tuple[str, str, Mapping[str, Statistics]]]:
        """Every variant's figures since the server started (every metric present)."""
        empty = Statistics(0, 0.0, 0.0, 0.0)
        found: list[tuple[str, str, Mapping[str, Statistics]]] = []
        for endpoint, variant in self.variants():
            totals = self._recorders[(endpoint.lower(), variant)].totals
            found.append((endpoint, variant, {m: totals.get(m, empty) for m in self.units}))
        return found

    def _horizon(self) -> float:
        return (self.clock() - self.retention) // self.period * self.period
