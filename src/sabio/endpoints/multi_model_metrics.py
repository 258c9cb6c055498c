"""SageMaker's model loading metrics of multi-model variants, kept in memory.

Per EndpointName and VariantName, as SageMaker publishes them for CPU multi-model endpoints:
- `ModelCacheHit`: one sample per invocation, 1 when its target model was already loaded and
  0 when it had to be loaded (so the Average is the hit rate);
- `ModelLoadingWaitTime`: how long an invocation waited for its model to be downloaded and
  loaded (only invocations that waited);
- `ModelDownloadingTime`, `ModelLoadingTime`, `ModelUnloadingTime`: one sample per model
  fetched from the artifact store, started, and stopped;
- `LoadedModelCount`: the number of models loaded, sampled at each load and unload.

Times are in microseconds and counts have unit None, as AWS documents them. Samples go into
one-minute buckets kept for three hours; nothing is persisted.
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

CACHE_HIT = "ModelCacheHit"
LOADING_WAIT_TIME = "ModelLoadingWaitTime"
DOWNLOADING_TIME = "ModelDownloadingTime"
LOADING_TIME = "ModelLoadingTime"
UNLOADING_TIME = "ModelUnloadingTime"
LOADED_MODEL_COUNT = "LoadedModelCount"

UNITS: Mapping[str, str] = {
    CACHE_HIT: "None",
    LOADING_WAIT_TIME: "Microseconds",
    DOWNLOADING_TIME: "Microseconds",
    LOADING_TIME: "Microseconds",
    UNLOADING_TIME: "Microseconds",
    LOADED_MODEL_COUNT: "None",
}


@dataclass
class _Recorder:
    endpoint: str
    variant: str
    buckets: deque[tuple[int, dict[str, Statistics]]] = field(default_factory=deque)
    totals: dict[str, Statistics] = field(default_factory=dict)


class MultiModelMetrics:
    """Implements `VariantSeries`: the CloudWatch API reads its datapoints and `/metrics` its
    lifetime totals."""

    units: Mapping[str, str] = UNITS
    exposed: Mapping[str, tuple[str, str]] = {
        CACHE_HIT: (
            "sabio_model_cache_hits_total",
            "Invocations of a multi-model variant whose target model was already loaded.",
        ),
        LOADING_WAIT_TIME: (
            "sabio_model_loading_wait_seconds",
            "Time invocations of a multi-model variant waited for their model to load.",
        ),
        LOADING_TIME: (
            "sabio_model_loading_seconds",
            "Time starting a model of a multi-model variant took.",
        ),
        UNLOADING_TIME: (
            "sabio_model_unloading_seconds",
            "Time stopping a model of a multi-model variant took.",
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

    def sample(self, endpoint: str, variant: str, metric: str, value: float) -> None:
        """One sample of `metric` (a name in `UNITS`, in its unit)."""
        key = (endpoint.lower(), variant)
        recorder = self._recorders.get(key)
        if recorder is None:
            recorder = self._recorders[key] = _Recorder(endpoint, variant)
        recorder.endpoint = endpoint
        start = int(self.clock() // self.period * self.period)
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

    def seconds(self, endpoint: str, variant: str, metric: str, seconds: float) -> None:
        """One time sample of `metric`, taken in seconds and kept in microseconds."""
        self.sample(endpoint, variant, metric, max(0.0, seconds) * 1e6)

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
        if recorder is None or recorder.endpoint != endpoint or metric not in UNITS:
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
        """Every variant's figures since the server started (every exposed metric present)."""
        empty = Statistics(0, 0.0, 0.0, 0.0)
        found: list[tuple[str, str, Mapping[str, Statistics]]] = []
        for endpoint, variant in self.variants():
            totals = self._recorders[(endpoint.lower(), variant)].totals
            found.append((endpoint, variant, {m: totals.get(m, empty) for m in UNITS}))
        return found

    def _horizon(self) -> float:
        return (self.clock() - self.retention) // self.period * self.period
