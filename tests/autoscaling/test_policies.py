"""The scaling arithmetic alone: target tracking's desired capacity, step intervals and step
adjustments, as Application Auto Scaling computes them."""

from __future__ import annotations

import pytest

from sabio.autoscaling import policies


def test_target_tracking_scales_out_to_spread_the_load_at_the_target() -> None:
    assert policies.tracking_scale_out(2, 150.0, 70.0) == 5  # ceil(2 * 150 / 70)
    assert policies.tracking_scale_out(2, 70.0, 70.0) is None
    assert policies.tracking_scale_out(0, 3.0, 1.0) == 3  # from zero: the load itself


def test_target_tracking_scales_in_a_tenth_at_a_time() -> None:
    assert policies.tracking_scale_in(2, 0.0, 70.0) == 1
    assert policies.tracking_scale_in(20, 0.0, 70.0) == 18
    assert policies.tracking_scale_in(20, 60.0, 70.0) == 18  # ceil(17.1) = 18, the floor too
    assert policies.tracking_scale_in(1, 0.0, 70.0) == 0  # Min/Max clamping is the caller's
    assert policies.tracking_scale_in(3, 69.0, 70.0) is None


def test_the_low_alarm_is_at_ninety_percent_of_the_target() -> None:
    assert policies.breach(71.0, 70.0) == policies.Breach(high=True, low=False)
    assert policies.breach(65.0, 70.0) == policies.Breach(high=False, low=False)
    assert policies.breach(62.0, 70.0) == policies.Breach(high=False, low=True)


@pytest.mark.parametrize(
    ("kind", "adjustment", "magnitude", "expected"),
    [
        ("ChangeInCapacity", 2, None, 6),
        ("ChangeInCapacity", -1, None, 3),
        ("ExactCapacity", 7, None, 7),
        ("PercentChangeInCapacity", 50, None, 6),
        ("PercentChangeInCapacity", 10, None, 5),  # 0.4 of an instance still moves one
        ("PercentChangeInCapacity", -30, None, 3),  # -1.2 rounds toward zero
        ("PercentChangeInCapacity", 25, 3, 7),  # MinAdjustmentMagnitude
    ],
)
def test_step_adjustments(kind: str, adjustment: int, magnitude: int | None, expected: int) -> None:
    assert policies.step_capacity(4, kind, adjustment, magnitude) == expected


def test_the_step_whose_interval_holds_the_breach() -> None:
    steps = [
        {"MetricIntervalUpperBound": 0, "ScalingAdjustment": -1},
        {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10, "ScalingAdjustment": 1},
        {"MetricIntervalLowerBound": 10, "ScalingAdjustment": 3},
    ]
    assert policies.step_for(steps, 0)["ScalingAdjustment"] == 1  # type: ignore[index]
    assert policies.step_for(steps, 9.9)["ScalingAdjustment"] == 1  # type: ignore[index]
    assert policies.step_for(steps, 10)["ScalingAdjustment"] == 3  # type: ignore[index]
    assert policies.step_for(steps, -5)["ScalingAdjustment"] == -1  # type: ignore[index]
    assert policies.step_intervals_problem(steps) is None


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        (
            [
                {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10},
                {"MetricIntervalLowerBound": 5},
            ],
            "overlap",
        ),
        (
            [
                {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10},
                {"MetricIntervalLowerBound": 20},
            ],
            "gaps",
        ),
        ([{"MetricIntervalLowerBound": 0}, {"MetricIntervalLowerBound": 10}], "null upper"),
        ([{"MetricIntervalLowerBound": 5, "MetricIntervalUpperBound": 1}], "less than"),
    ],
)
def test_invalid_step_intervals(steps: list[dict[str, float]], problem: str) -> None:
    found = policies.step_intervals_problem(steps)
    assert found is not None and problem in found


def test_aggregation_and_clamping() -> None:
    assert policies.aggregate([1.0, 3.0], "Average") == 2.0
    assert policies.aggregate([1.0, 3.0], "Maximum") == 3.0
    assert policies.aggregate([1.0, 3.0], "Minimum") == 1.0
    assert policies.clamp(9, 1, 4) == 4
    assert policies.clamp(0, 1, 4) == 1
