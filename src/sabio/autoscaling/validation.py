"""What PutScalingPolicy checks in a policy's configuration beyond botocore's model, and the
defaults it fills in, worded as Application Auto Scaling words its refusals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sabio.autoscaling.dimensions import DIMENSIONS, INSTANCE_COUNT, Dimension
from sabio.autoscaling.policies import step_intervals_problem
from sabio.errors import ValidationError

DEFAULT_COOLDOWN = 300


def target_tracking(
    p: dict[str, Any], dimension: Dimension = DIMENSIONS[INSTANCE_COUNT]
) -> dict[str, Any]:
    config = p.get("TargetTrackingScalingPolicyConfiguration")
    if config is None:
        raise ValidationError(
            "TargetTrackingScalingPolicyConfiguration is required for a TargetTrackingScaling "
            "policy."
        )
    if p.get("StepScalingPolicyConfiguration"):
        raise ValidationError(
            "StepScalingPolicyConfiguration is not allowed for a TargetTrackingScaling policy."
        )
    if float(config["TargetValue"]) <= 0:
        raise ValidationError("TargetValue must be greater than 0.")
    predefined = config.get("PredefinedMetricSpecification")
    customized = config.get("CustomizedMetricSpecification")
    if (predefined is None) == (customized is None):
        raise ValidationError(
            "Exactly one of PredefinedMetricSpecification and CustomizedMetricSpecification "
            "must be given."
        )
    if predefined is not None and predefined["PredefinedMetricType"] != dimension.predefined:
        raise ValidationError(
            f"Predefined metric type {predefined['PredefinedMetricType']} is not supported for "
            f"scalable dimension {dimension.name}; use {dimension.predefined}."
        )
    if customized is not None:
        if customized.get("Metrics"):
            raise ValidationError("Metric math (Metrics) is not supported; name one metric.")
        missing = [m for m in ("MetricName", "Namespace", "Statistic") if not customized.get(m)]
        if missing:
            raise ValidationError(f"CustomizedMetricSpecification requires {', '.join(missing)}.")
    for member in ("ScaleOutCooldown", "ScaleInCooldown"):
        if int(config.get(member, 0)) < 0:
            raise ValidationError(f"{member} must be greater than or equal to 0.")
    return {
        "ScaleOutCooldown": DEFAULT_COOLDOWN,
        "ScaleInCooldown": DEFAULT_COOLDOWN,
        "DisableScaleIn": False,
        **config,
    }


def step_scaling(p: dict[str, Any]) -> dict[str, Any]:
    config = p.get("StepScalingPolicyConfiguration")
    if config is None:
        raise ValidationError(
            "StepScalingPolicyConfiguration is required for a StepScaling policy."
        )
    if p.get("TargetTrackingScalingPolicyConfiguration"):
        raise ValidationError(
            "TargetTrackingScalingPolicyConfiguration is not allowed for a StepScaling policy."
        )
    if not config.get("AdjustmentType"):
        raise ValidationError("AdjustmentType is required for a StepScaling policy.")
    steps: Sequence[dict[str, Any]] = config.get("StepAdjustments") or []
    if not steps:
        raise ValidationError("StepAdjustments must contain at least one step adjustment.")
    problem = step_intervals_problem(steps)
    if problem:
        raise ValidationError(problem)
    if config.get("MinAdjustmentMagnitude") is not None:
        if config["AdjustmentType"] != "PercentChangeInCapacity":
            raise ValidationError(
                "MinAdjustmentMagnitude is only supported with PercentChangeInCapacity."
            )
        if int(config["MinAdjustmentMagnitude"]) < 1:
            raise ValidationError("MinAdjustmentMagnitude must be at least 1.")
    if config["AdjustmentType"] == "ExactCapacity" and any(
        int(s["ScalingAdjustment"]) < 0 for s in steps
    ):
        raise ValidationError("ScalingAdjustment cannot be negative with ExactCapacity.")
    if int(config.get("Cooldown", 0)) < 0:
        raise ValidationError("Cooldown must be greater than or equal to 0.")
    return {"Cooldown": DEFAULT_COOLDOWN, "MetricAggregationType": "Average", **config}
