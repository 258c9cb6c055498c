"""SageMaker's endpoint invocation metrics, kept in memory.

Per endpoint and production variant, the runtime router records every invocation that reached a
model worker (`VariantMetrics.record`): a few integer adds on attributes of one object, no lock
(everything runs on the server's event loop) and no allocation beyond a float for
`InvocationsPerInstance`. The figures go into buckets of `period_seconds` (one minute, as
SageMaker publishes them) aligned to the wall clock; a bucket is closed into an immutable
`Bucket` when the first invocation of a later period arrives, and closed buckets are kept for
`retention_seconds` (three hours). Nothing is persisted: a restart starts from zero.

The CloudWatch API (`sabio.api.cloudwatch`) computes `GetMetricStatistics` and `GetMetricData`
from the buckets (`EndpointMetrics.datapoints`); `/metrics` renders the lifetime counters and
latency histograms (`sabio.telemetry.prometheus`).

What is measured, by the router (`serving/router.py`), from the entry of `Router.invoke`:
- `ModelLatency`: from just before the request is handed to the worker's connection until its
  whole response has been read (or the call failed), as SageMaker counts it ("includes the local
  communication times taken to send the request and to fetch the response from the container").
- `OverheadLatency`: the rest of the time spent in `Router.invoke`: finding the route, choosing
  the variant and instance, data capture, building the reply. Reading the request body and
  writing the response happen in the runtime handler before and after the router and are not
  included.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass
from time import perf_counter_ns
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sabio.telemetry.serverless_metrics import ConcurrencyRecorder

NAMESPACE = "AWS/SageMaker"
ENDPOINT_DIMENSION = "EndpointName"
VARIANT_DIMENSION = "VariantName"

INVOCATIONS = "Invocations"
ERRORS_4XX = "Invocation4XXErrors"
ERRORS_5XX = "Invocation5XXErrors"
MODEL_LATENCY = "ModelLatency"
OVERHEAD_LATENCY = "OverheadLatency"
PER_INSTANCE = "InvocationsPerInstance"
MODEL_SETUP_TIME = "ModelSetupTime"
PC_EXECUTIONS = "ServerlessProvisionedConcurrencyExecutions"
PC_UTILIZATION = "ServerlessProvisionedConcurrencyUtilization"
PC_INVOCATIONS = "ServerlessProvisionedConcurrencyInvocations"
PC_SPILLOVER = "ServerlessProvisionedConcurrencySpilloverInvocations"
PROVISIONED_CONCURRENCY = (PC_EXECUTIONS, PC_UTILIZATION, PC_INVOCATIONS, PC_SPILLOVER)
"""Published by serverless variants with provisioned concurrency (`serverless_metrics`)."""

UNITS: dict[str, str] = {
    INVOCATIONS: "None",
    ERRORS_4XX: "None",
    ERRORS_5XX: "None",
    MODEL_LATENCY: "Microseconds",
    OVERHEAD_LATENCY: "Microseconds",
    PER_INSTANCE: "None",
    MODEL_SETUP_TIME: "Microseconds",
    PC_EXECUTIONS: "Count",
    PC_UTILIZATION: "None",
    PC_INVOCATIONS: "Count",
    PC_SPILLOVER: "Count",
}
"""Every metric published per (EndpointName, VariantName), with the unit SageMaker gives it."""
NOT_ASYNCHRONOUS = frozenset({INVOCATIONS, PER_INSTANCE, OVERHEAD_LATENCY})
"""Not published for endpoints with an AsyncInferenceConfig, as SageMaker documents."""

PERIOD_SECONDS = 60
RETENTION_SECONDS = 3 * 3600

LATENCY_BOUNDS_SECONDS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Upper bounds of the Prometheus latency histograms (an implicit +Inf bucket follows)."""
_BOUNDS_NS = tuple(round(b * 1e9) for b in LATENCY_BOUNDS_SECONDS)
_NO_MIN = 1 << 62
_wall_ns = time.time_ns


class RoutedVariant(Protocol):
    """What the router's variants offer the store: a name, the instances serving it (their
    number is the `InvocationsPerInstance` divisor and the instance gauge) and a slot for the
    recorder."""

    @property
    def name(self) -> str: ...

    @property
    def instances(self) -> Sized: ...

    metrics: VariantMetrics | None


@dataclass(frozen=True, slots=True)
class Statistics:
    sample_count: int
    sum: float
    minimum: float
    maximum: float

    @property
    def average(self) -> float:
        return self.sum / self.sample_count if self.sample_count else 0.0

    def merge(self, other: Statistics) -> Statistics:
        return Statistics(
            self.sample_count + other.sample_count,
            self.sum + other.sum,
            min(self.minimum, other.minimum),
            max(self.maximum, other.maximum),
        )


@dataclass(frozen=True, slots=True)
class Bucket:
    """One period of one variant; only periods with at least one invocation exist."""

    start: int
    """Wall-clock start, in epoch seconds (a multiple of the period)."""
    invocations: int
    errors_4xx: int
    errors_5xx: int
    model_ns: int
    model_min_ns: int
    model_max_ns: int
    overhead_ns: int
    overhead_min_ns: int
    overhead_max_ns: int
    per_instance: float
    instances_min: int
    instances_max: int

    def statistics(self, metric: str) -> Statistics:
        """The CloudWatch statistics of one metric over this bucket.

        Each invocation is one sample of every metric, as SageMaker publishes them: 1 for
        `Invocations`, 1 or 0 for the error counts (so their Average is the error rate),
        the latencies in microseconds, and 1/instances for `InvocationsPerInstance`.
        """
        n = self.invocations
        if metric == INVOCATIONS:
            return Statistics(n, float(n), 1.0, 1.0)
        if metric in (ERRORS_4XX, ERRORS_5XX):
            errors = self.errors_4xx if metric == ERRORS_4XX else self.errors_5xx
            return Statistics(n, float(errors), 0.0 if errors < n else 1.0, 1.0 if errors else 0.0)
        if metric == MODEL_LATENCY:
            return Statistics(
                n, self.model_ns / 1000, self.model_min_ns / 1000, self.model_max_ns / 1000
            )
        if metric == OVERHEAD_LATENCY:
            return Statistics(
                n,
                self.overhead_ns / 1000,
                self.overhead_min_ns / 1000,
                self.overhead_max_ns / 1000,
            )
        if metric == PER_INSTANCE:
            return Statistics(n, self.per_instance, 1 / self.instances_max, 1 / self.instances_min)
        raise KeyError(metric)


class VariantMetrics:
    """The recorder of one (endpoint, variant): the open bucket's figures as plain attributes,
    the closed buckets of the retention window, lifetime totals and latency histograms."""

    __slots__ = (
        "_key",
        "_offset_ns",
        "_period_ns",
        "asynchronous",
        "concurrency",
        "endpoint",
        "errors_4xx",
        "errors_5xx",
        "history",
        "instances_max",
        "instances_min",
        "invocations",
        "model_hist",
        "model_max",
        "model_min",
        "model_ns",
        "overhead_hist",
        "overhead_max",
        "overhead_min",
        "overhead_ns",
        "per_instance",
        "per_instance_total",
        "period",
        "setup_totals",
        "setups",
        "source",
        "totals",
        "variant",
    )

    def __init__(self, endpoint: str, variant: str, period: int, retention: int) -> None:
        self.endpoint = endpoint
        self.variant = variant
        self.period = period
        self._period_ns = period * 1_000_000_000
        self._offset_ns = _wall_ns() - perf_counter_ns()
        self._key = -1
        self.history: deque[Bucket] = deque(maxlen=math.ceil(retention / period) + 1)
        self.totals = [0, 0, 0, 0, 0]
        """Closed buckets' invocations, 4XX, 5XX, model ns and overhead ns, for Prometheus."""
        self.per_instance_total = 0.0
        """Closed buckets' `InvocationsPerInstance` sum, for the autoscaler."""
        self.setups: deque[tuple[float, int]] = deque(maxlen=10_000)
        """Cold starts of a serverless variant: (epoch seconds, `ModelSetupTime` in µs)."""
        self.setup_totals = [0, 0]
        """Cold starts and their µs since the start, for Prometheus."""
        self.concurrency: ConcurrencyRecorder | None = None
        """A serverless variant's provisioned-concurrency figures, once it has provisioned
        concurrency."""
        self.model_hist = [0] * (len(_BOUNDS_NS) + 1)
        self.overhead_hist = [0] * (len(_BOUNDS_NS) + 1)
        self.source: RoutedVariant | None = None
        """The routed variant while the endpoint serves it, for the instance gauge."""
        self.asynchronous = False
        """The endpoint does asynchronous inference: `NOT_ASYNCHRONOUS` are not published."""
        self._reset()

    def _reset(self) -> None:
        self.invocations = 0
        self.errors_4xx = 0
        self.errors_5xx = 0
        self.model_ns = 0
        self.model_min = _NO_MIN
        self.model_max = 0
        self.overhead_ns = 0
        self.overhead_min = _NO_MIN
        self.overhead_max = 0
        self.per_instance = 0.0
        self.instances_min = _NO_MIN
        self.instances_max = 0

    def record(self, status: int, started: int, sent: int, answered: int, instances: int) -> None:
        """One invocation that reached a worker; the arguments are `perf_counter_ns()` readings
        (`answered` is 0 when no response came) and the worker's HTTP status (0 for none: a
        timeout or a dropped connection, counted as a 5XX error)."""
        end = perf_counter_ns()
        instances = instances or 1  # an instance removed by a scale-down while serving this
        model = (answered or end) - sent
        overhead = end - started - model
        key = (end + self._offset_ns) // self._period_ns
        if key > self._key:
            self._roll(key)
        self.invocations += 1
        if status >= 500 or status == 0:
            self.errors_5xx += 1
        elif status >= 400:
            self.errors_4xx += 1
        self.model_ns += model
        if model < self.model_min:
            self.model_min = model
        if model > self.model_max:
            self.model_max = model
        self.overhead_ns += overhead
        if overhead < self.overhead_min:
            self.overhead_min = overhead
        if overhead > self.overhead_max:
            self.overhead_max = overhead
        self.per_instance += 1 / instances
        if instances < self.instances_min:
            self.instances_min = instances
        if instances > self.instances_max:
            self.instances_max = instances
        self.model_hist[bisect_right(_BOUNDS_NS, model)] += 1
        self.overhead_hist[bisect_right(_BOUNDS_NS, overhead)] += 1

    def _roll(self, key: int) -> None:
        """Close the open bucket (if it saw anything) and open the one numbered `key`."""
        closed = self._open_bucket()
        if closed is not None:
            self.history.append(closed)
            totals = self.totals
            totals[0] += closed.invocations
            totals[1] += closed.errors_4xx
            totals[2] += closed.errors_5xx
            totals[3] += closed.model_ns
            totals[4] += closed.overhead_ns
            self.per_instance_total += closed.per_instance
        self._reset()
        self._key = key
        # perf_counter and the wall clock drift apart (NTP); re-anchor once a period.
        self._offset_ns = _wall_ns() - perf_counter_ns()

    def _open_bucket(self) -> Bucket | None:
        if not self.invocations:
            return None
        return Bucket(
            self._key * self.period,
            self.invocations,
            self.errors_4xx,
            self.errors_5xx,
            self.model_ns,
            self.model_min,
            self.model_max,
            self.overhead_ns,
            self.overhead_min,
            self.overhead_max,
            self.per_instance,
            self.instances_min,
            self.instances_max,
        )

    def buckets(self, since: float = 0.0) -> list[Bucket]:
        """Closed and open buckets starting at or after `since` (epoch seconds), oldest first."""
        found = [b for b in self.history if b.start >= since]
        current = self._open_bucket()
        if current is not None and current.start >= since:
            found.append(current)
        return found

    def lifetime(self) -> tuple[int, int, int, int, int]:
        """Invocations, 4XX errors, 5XX errors, model ns and overhead ns since the start."""
        t = self.totals
        return (
            t[0] + self.invocations,
            t[1] + self.errors_4xx,
            t[2] + self.errors_5xx,
            t[3] + self.model_ns,
            t[4] + self.overhead_ns,
        )

    def cumulative(self) -> tuple[int, float]:
        """Invocations and the `InvocationsPerInstance` sum since the start: the autoscaler
        differences two readings to get a window shorter than a bucket. Read on the event loop,
        where the recorder is written, so the two figures agree."""
        return self.totals[0] + self.invocations, self.per_instance_total + self.per_instance

    def record_setup(self, micros: int) -> None:
        """One cold start of a serverless worker: `ModelSetupTime`, one sample per start."""
        self.setups.append((_wall_ns() / 1e9, micros))
        self.setup_totals[0] += 1
        self.setup_totals[1] += micros

    def metric_names(self) -> list[str]:
        """The metrics this variant publishes: `ModelSetupTime` only once it had a cold start
        (serverless variants)."""
        return [
            m
            for m in UNITS
            if (m != MODEL_SETUP_TIME or self.setups)
            and (m not in PROVISIONED_CONCURRENCY or self.concurrency is not None)
            and not (self.asynchronous and m in NOT_ASYNCHRONOUS)
        ]

    def setup_statistics(self, since: float) -> list[tuple[float, Statistics]]:
        """Each cold start at or after `since` (epoch seconds) as a one-sample statistic."""
        return [(t, Statistics(1, m, m, m)) for t, m in self.setups if t >= since]

    def instance_count(self) -> int:
        source = self.source
        return len(source.instances) if source is not None else 0


@dataclass(frozen=True, slots=True)
class Datapoint:
    timestamp: int
    statistics: Statistics


class EndpointSeries(Protocol):
    """Metrics another part of the server publishes per endpoint alone (dimension
    `EndpointName`), such as the asynchronous inference backlog; it keeps the figures."""

    units: Mapping[str, str]

    def endpoints(self) -> list[str]: ...

    def datapoints(
        self, endpoint: str, metric: str, start: float, end: float, period: int
    ) -> list[Datapoint]: ...


class VariantSeries(Protocol):
    """Metrics another part of the server publishes per (EndpointName, VariantName), such as
    asynchronous inference's `InvocationsProcesssed`; it keeps the figures. `exposed` names each
    metric's `/metrics` family: a `..._total` counter of its Sum or a `..._seconds` summary."""

    units: Mapping[str, str]
    exposed: Mapping[str, tuple[str, str]]

    def variants(self) -> list[tuple[str, str]]: ...

    def datapoints(
        self, endpoint: str, variant: str, metric: str, start: float, end: float, period: int
    ) -> list[Datapoint]: ...

    def lifetime(self) -> list[tuple[str, str, Mapping[str, Statistics]]]: ...


class ServerCounter(Protocol):
    """A counter of the whole server that `/metrics` shows beside the endpoint metrics."""

    name: str
    help: str

    def value(self) -> int: ...


class EndpointMetrics:
    """Every variant's recorder, found by endpoint and variant name."""

    def __init__(
        self,
        period_seconds: int = PERIOD_SECONDS,
        retention_seconds: int = RETENTION_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if period_seconds < 1 or retention_seconds < period_seconds:
            raise ValueError("need 1 <= period_seconds <= retention_seconds")
        self.period = period_seconds
        self.retention = retention_seconds
        self.clock = clock
        self._recorders: dict[tuple[str, str], VariantMetrics] = {}
        self._asynchronous: frozenset[str] = frozenset()
        self.endpoint_series: list[EndpointSeries] = []
        self.variant_series: list[VariantSeries] = []
        self.counters: list[ServerCounter] = []
        """Server-wide counters for `/metrics` (such as the async dispatcher's polls)."""

    # What the router calls when routes change (rarely).

    def attach(self, endpoint: str, variants: Iterable[RoutedVariant]) -> None:
        """Give each routed variant of `endpoint` its recorder (the same one again for a name
        seen before, so a route replaced by an update keeps counting) and mark the endpoint's
        other variants as no longer served."""
        served = set()
        for variant in variants:
            key = (endpoint.lower(), variant.name)
            recorder = self._recorders.get(key)
            if recorder is None:
                recorder = VariantMetrics(endpoint, variant.name, self.period, self.retention)
                self._recorders[key] = recorder
            recorder.endpoint = endpoint
            recorder.source = variant
            recorder.asynchronous = key[0] in self._asynchronous
            variant.metrics = recorder
            served.add(key)
        self.detach(endpoint, keep=served)

    def detach(self, endpoint: str, keep: Collection[tuple[str, str]] = ()) -> None:
        """The endpoint's variants are no longer served: their figures stay readable until they
        leave the retention window."""
        name = endpoint.lower()
        for key, recorder in self._recorders.items():
            if key[0] == name and key not in keep:
                recorder.source = None

    def mark_asynchronous(self, endpoints: Collection[str]) -> None:
        """These endpoints (and no others) do asynchronous inference now. A recorder once
        marked stays marked, so a deleted asynchronous endpoint's figures stay unpublished
        while they age out."""
        self._asynchronous = frozenset(name.lower() for name in endpoints)
        for (name, _), recorder in self._recorders.items():
            if name in self._asynchronous:
                recorder.asynchronous = True

    # What the readers (CloudWatch API, Prometheus) call.

    def recorders(self) -> list[VariantMetrics]:
        """Recorders of served variants and of any with figures still in the window, sorted by
        endpoint and variant; drops the others."""
        horizon = self._horizon()
        for key, recorder in list(self._recorders.items()):
            if recorder.source is None and not recorder.buckets(horizon):
                del self._recorders[key]
        return sorted(self._recorders.values(), key=lambda r: (r.endpoint, r.variant))

    def find(self, endpoint: str, variant: str) -> VariantMetrics | None:
        recorder = self._recorders.get((endpoint.lower(), variant))
        return recorder if recorder is not None and recorder.endpoint == endpoint else None

    def active(self) -> Iterator[VariantMetrics]:
        """Recorders with at least one invocation in the retention window."""
        horizon = self._horizon()
        for recorder in self.recorders():
            if recorder.buckets(horizon):
                yield recorder

    def datapoints(
        self,
        endpoint: str,
        variant: str,
        metric: str,
        start: float,
        end: float,
        period: int,
    ) -> list[Datapoint]:
        """A metric's statistics per `period` seconds from `start` (already rounded as
        CloudWatch rounds it) up to `end` (exclusive): each bucket falls in the period that
        holds its start. Periods without invocations have no datapoint."""
        recorder = self.find(endpoint, variant)
        if recorder is None or metric not in UNITS:
            return []
        if recorder.asynchronous and metric in NOT_ASYNCHRONOUS:
            return []
        merged: dict[int, Statistics] = {}
        since = max(start, self._horizon())
        samples: list[tuple[float, Statistics]]
        if metric in PROVISIONED_CONCURRENCY:
            concurrency = recorder.concurrency
            buckets = concurrency.buckets(since) if concurrency is not None else []
            samples = [(b.start, b.statistics(metric)) for b in buckets]
        else:
            samples = (
                recorder.setup_statistics(since)
                if metric == MODEL_SETUP_TIME
                else [(b.start, b.statistics(metric)) for b in recorder.buckets(since)]
            )
        for when, stats in samples:
            if not start <= when < end:
                continue
            slot = int(start + (when - start) // period * period)
            previous = merged.get(slot)
            merged[slot] = stats if previous is None else previous.merge(stats)
        return [Datapoint(t, merged[t]) for t in sorted(merged)]

    def _horizon(self) -> float:
        """The start of the oldest bucket still in the retention window."""
        return (self.clock() - self.retention) // self.period * self.period
