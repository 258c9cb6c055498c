"""SageMaker's provisioned-concurrency metrics of a serverless variant, kept in memory.

A serverless variant with `ProvisionedConcurrency` publishes, per EndpointName and VariantName:
- `ServerlessProvisionedConcurrencyExecutions`: the concurrent invocations its provisioned
  concurrency serves (at most the provisioned count);
- `ServerlessProvisionedConcurrencyUtilization`: those executions divided by the provisioned
  concurrency, the metric target tracking on `SageMakerVariantProvisionedConcurrencyUtilization`
  follows;
- `ServerlessProvisionedConcurrencyInvocations` and `...SpilloverInvocations`: invocations
  served within the provisioned concurrency, and those beyond it (served on demand).

The serverless pool reports each change of its concurrency (`level`) and each invocation
(`invoked`); the two concurrency metrics are time-weighted, so a minute's Average is the mean
concurrency over that minute, not over the moments requests arrived, and an idle minute reads 0.
One datapoint per period, as CloudWatch shows a metric published once a minute.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sabio.telemetry.endpoint_metrics import (
    PC_EXECUTIONS,
    PC_INVOCATIONS,
    PC_SPILLOVER,
    PC_UTILIZATION,
    Statistics,
)


@dataclass
class ConcurrencyBucket:
    """One period: the integrals of executions and utilization over the seconds it covered,
    their extremes, and the invocations within and beyond the provisioned concurrency."""

    start: int
    executions_area: float = 0.0
    utilization_area: float = 0.0
    seconds: float = 0.0
    executions_min: float = math.inf
    executions_max: float = 0.0
    utilization_min: float = math.inf
    utilization_max: float = 0.0
    invocations: int = 0
    spillover: int = 0

    def statistics(self, metric: str) -> Statistics:
        if metric in (PC_INVOCATIONS, PC_SPILLOVER):
            count = float(self.invocations if metric == PC_INVOCATIONS else self.spillover)
            return Statistics(1, count, count, count)
        seconds = self.seconds or 1.0
        if metric == PC_EXECUTIONS:
            average = self.executions_area / seconds
            return Statistics(1, average, self.executions_min, self.executions_max)
        if metric == PC_UTILIZATION:
            average = self.utilization_area / seconds
            return Statistics(1, average, self.utilization_min, self.utilization_max)
        raise KeyError(metric)


class ConcurrencyRecorder:
    """The provisioned-concurrency figures of one serverless variant, written on the event
    loop by its pool (`sabio.endpoints.serverless`)."""

    def __init__(self, period: int, kept: int, clock: Callable[[], float] = time.time) -> None:
        self.period = period
        self.clock = clock
        self.history: deque[ConcurrencyBucket] = deque(maxlen=kept)
        """The closed periods of the retention window (as many as the variant's recorder keeps)."""
        now = clock()
        self._open = ConcurrencyBucket(int(now // period * period))
        self._last = now
        self._executions = 0
        self._provisioned = 0
        self._totals = [0.0, 0.0, 0, 0]
        """Closed buckets' executions area, utilization area, invocations and spillover."""
        self._extremes(self._open)

    def level(self, in_flight: int, provisioned: int) -> None:
        """The pool now has `in_flight` invocations and `provisioned` provisioned concurrency."""
        self._advance(self.clock())
        self._provisioned = provisioned
        self._executions = min(in_flight, provisioned)
        self._extremes(self._open)

    def invoked(self, in_flight: int, provisioned: int) -> None:
        """One invocation entered, making `in_flight`: within provisioned concurrency or not."""
        self.level(in_flight, provisioned)
        if in_flight > provisioned:
            self._open.spillover += 1
        else:
            self._open.invocations += 1

    def cumulative(self) -> tuple[float, float, float, int, int]:
        """The recorder's time, executions and utilization integrated over time (seconds) since
        the start, and the invocations within and beyond the provisioned concurrency: the
        autoscaler differences two readings for a window shorter than a period (dividing by
        the difference of the first, so utilization never reads above 1)."""
        now = self.clock()
        self._advance(now)
        t, o = self._totals, self._open
        return (
            now,
            t[0] + o.executions_area,
            t[1] + o.utilization_area,
            int(t[2]) + o.invocations,
            int(t[3]) + o.spillover,
        )

    def buckets(self, since: float = 0.0) -> list[ConcurrencyBucket]:
        """Closed buckets and the open one starting at or after `since`, oldest first."""
        self._advance(self.clock())
        return [b for b in (*self.history, self._open) if b.start >= since]

    def gauges(self) -> tuple[int, int, int, int]:
        """Provisioned concurrency now, the executions it serves now, and the invocations
        within and beyond it since the start, for `/metrics`."""
        _, _, _, invocations, spillover = self.cumulative()
        return self._provisioned, self._executions, invocations, spillover

    def _utilization(self) -> float:
        return self._executions / self._provisioned if self._provisioned else 0.0

    def _extremes(self, bucket: ConcurrencyBucket) -> None:
        utilization, executions = self._utilization(), float(self._executions)
        bucket.executions_min = min(bucket.executions_min, executions)
        bucket.executions_max = max(bucket.executions_max, executions)
        bucket.utilization_min = min(bucket.utilization_min, utilization)
        bucket.utilization_max = max(bucket.utilization_max, utilization)

    def _advance(self, now: float) -> None:
        """Integrate the current level up to `now`, closing each period it passes (an idle
        stretch longer than the retention window keeps only the periods still in it)."""
        now = max(now, self._last)
        end = self._open.start + self.period
        while now >= end:
            self._add(end - self._last)
            self._close()
            kept = self.history.maxlen or 1
            skipped = max(0, int((now - end) // self.period) - kept) * self.period
            self._totals[0] += self._executions * skipped
            self._totals[1] += self._utilization() * skipped
            self._open = ConcurrencyBucket(end + skipped)
            self._extremes(self._open)
            self._last = float(self._open.start)
            end = self._open.start + self.period
        self._add(now - self._last)
        self._last = now

    def _add(self, seconds: float) -> None:
        if seconds <= 0:
            return
        bucket = self._open
        bucket.seconds += seconds
        bucket.executions_area += self._executions * seconds
        bucket.utilization_area += self._utilization() * seconds

    def _close(self) -> None:
        closed = self._open
        if closed.seconds > 0 or closed.invocations or closed.spillover:
            self.history.append(closed)
        t = self._totals
        t[0] += closed.executions_area
        t[1] += closed.utilization_area
        t[2] += closed.invocations
        t[3] += closed.spillover
