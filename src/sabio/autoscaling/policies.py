"""The arithmetic of scaling policies, as Application Auto Scaling does it: pure functions of a
metric value, the current capacity and the policy's configuration, so they are tested alone.

Target tracking follows the alarms AWS creates for a policy: a high alarm when the metric is
above the target, a low alarm when it is below 90% of it (and only after many more datapoints),
so capacity is added quickly and removed slowly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LOW_ALARM_RATIO = 0.9
"""The low alarm of a target tracking policy fires below 90% of the target value."""

SCALE_IN_FRACTION = 0.1
"""At most this share of the capacity (and at least one instance) is removed in one scale in."""


@dataclass(frozen=True)
class Breach:
    """Which of a target tracking policy's two alarms one datapoint breaches."""

    high: bool
    low: bool


def breach(value: float, target: float) -> Breach:
    return Breach(high=value > target, low=value < target * LOW_ALARM_RATIO)


def tracking_capacity(current: int, value: float, target: float) -> int:
    """The capacity that brings the per-instance metric back to the target: the load the
    current capacity carries (`current * value`) spread at `target` per instance."""
    return math.ceil(round(max(current, 1) * value / target, 9))


def tracking_scale_out(current: int, value: float, target: float) -> int | None:
    """The desired capacity on a high alarm, or None when it would not add any."""
    desired = tracking_capacity(current, value, target)
    return desired if desired > current else None


def tracking_scale_in(current: int, value: float, target: float) -> int | None:
    """The desired capacity on a low alarm, removing at most a tenth of the capacity (at least
    one instance) at a time; None when it would not remove any."""
    floor = current - max(1, math.floor(current * SCALE_IN_FRACTION))
    desired = max(tracking_capacity(current, value, target), floor)
    return desired if desired < current else None


def clamp(desired: int, minimum: int, maximum: int) -> int:
    return max(minimum, min(maximum, desired))


# Step scaling


def step_for(steps: Sequence[Mapping[str, Any]], delta: float) -> Mapping[str, Any] | None:
    """The step adjustment whose interval holds `delta` (the aggregated metric minus the alarm
    threshold). Above the threshold the lower bound is the inclusive one, below it the upper."""
    intervals = []
    for step in steps:
        lower = step.get("MetricIntervalLowerBound")
        upper = step.get("MetricIntervalUpperBound")
        low = -math.inf if lower is None else float(lower)
        high = math.inf if upper is None else float(upper)
        intervals.append((low, high, step))
    for low, high, step in intervals:
        if (low <= delta < high) if delta >= 0 else (low < delta <= high):
            return step
    return None


def step_capacity(
    current: int,
    adjustment_type: str,
    adjustment: int,
    min_adjustment_magnitude: int | None = None,
) -> int:
    """The capacity after one step adjustment, before Min/Max clamping."""
    if adjustment_type == "ExactCapacity":
        return adjustment
    if adjustment_type == "ChangeInCapacity":
        return current + adjustment
    change = current * adjustment / 100
    # Fractions round toward zero; a change that would round to nothing moves by one.
    rounded = int(change)
    if rounded == 0 and adjustment != 0:
        rounded = 1 if adjustment > 0 else -1
    if min_adjustment_magnitude and abs(rounded) < min_adjustment_magnitude:
        rounded = min_adjustment_magnitude if rounded > 0 else -min_adjustment_magnitude
    return current + rounded


def aggregate(values: Sequence[float], aggregation: str) -> float:
    """A step policy's MetricAggregationType over the alarm's datapoints."""
    if aggregation == "Minimum":
        return min(values)
    if aggregation == "Maximum":
        return max(values)
    return sum(values) / len(values)


def step_intervals_problem(steps: Sequence[Mapping[str, Any]]) -> str | None:
    """Why a set of step adjustments is not valid, worded as AWS words it, or None.

    Intervals may not overlap or leave gaps; only one may be unbounded below and only one
    unbounded above; each needs at least one bound."""
    bounds = []
    for step in steps:
        lower = step.get("MetricIntervalLowerBound")
        upper = step.get("MetricIntervalUpperBound")
        if lower is None and upper is None and len(steps) > 1:
            return "Only one step adjustment can have both bounds unset."
        if lower is not None and upper is not None and float(lower) >= float(upper):
            return "The lower bound of a step adjustment must be less than its upper bound."
        low = -math.inf if lower is None else float(lower)
        high = math.inf if upper is None else float(upper)
        bounds.append((low, high))
    bounds.sort()
    if sum(1 for low, _ in bounds if low == -math.inf) > 1:
        return "There can be only one step adjustment with a null lower bound."
    if sum(1 for _, high in bounds if high == math.inf) > 1:
        return "There can be only one step adjustment with a null upper bound."
    for (_, high), (low, _) in itertools.pairwise(bounds):
        if low < high:
            return "Step adjustment intervals must not overlap."
        if low > high:
            return "Step adjustment intervals must not have gaps between them."
    return None
