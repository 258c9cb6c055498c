"""Metric alarms that invoke step scaling policies, as CloudWatch `PutMetricAlarm` creates them.

A step scaling policy does nothing by itself: on AWS an alarm whose `AlarmActions` names the
policy's ARN runs it each period the alarm is in ALARM. `AlarmService` records such alarms (the
CloudWatch API's `PutMetricAlarm`, `DescribeAlarms` and `DeleteAlarms` take its operations) and
the autoscaler evaluates them with `AlarmState`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sabio.autoscaling.records import Arns
from sabio.resources import METRIC_ALARM
from sabio.store.entities import Resource
from sabio.store.repository import Repository

COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "GreaterThanThreshold": lambda v, t: v > t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


class AlarmService:
    def __init__(self, repository: Repository, arns: Arns, notify: Callable[[], None]) -> None:
        self.repository = repository
        self.arns = arns
        self.notify = notify

    def operations(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "PutMetricAlarm": self.put_metric_alarm,
            "DescribeAlarms": self.describe_alarms,
            "DeleteAlarms": self.delete_alarms,
        }

    def put_metric_alarm(self, p: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        spec = {k: v for k, v in p.items() if k != "Tags"}
        existing = self.repository.get(METRIC_ALARM.key, p["AlarmName"])
        if existing is not None:
            self.repository.update(METRIC_ALARM.key, p["AlarmName"], spec=spec)
        else:
            arn = self.arns.alarm(p["AlarmName"])
            self.repository.create(
                Resource(METRIC_ALARM.key, p["AlarmName"], arn, spec, now, now, "INSUFFICIENT_DATA")
            )
        self.notify()
        return {}

    def describe_alarms(self, p: dict[str, Any]) -> dict[str, Any]:
        names = set(p.get("AlarmNames") or [])
        prefix = p.get("AlarmNamePrefix") or ""
        found = []
        for alarm in self.repository.all(METRIC_ALARM.key):
            if (names and alarm.name not in names) or not alarm.name.startswith(prefix):
                continue
            found.append(
                {
                    **alarm.spec,
                    "AlarmArn": alarm.arn,
                    "StateValue": alarm.status,
                    "StateReason": alarm.state.get(
                        "StateReason", "Unchecked: Initial alarm creation"
                    ),
                    "StateUpdatedTimestamp": alarm.state.get("Updated", alarm.created_at),
                    "AlarmConfigurationUpdatedTimestamp": alarm.updated_at,
                }
            )
        return {"MetricAlarms": found, "CompositeAlarms": []}

    def delete_alarms(self, p: dict[str, Any]) -> dict[str, Any]:
        for name in p["AlarmNames"]:
            self.repository.delete(METRIC_ALARM.key, name)
        return {}


@dataclass
class AlarmState:
    """The datapoints one alarm has seen, newest last, and when it took the last one."""

    values: deque[float | None] = field(default_factory=deque)
    last: float = float("-inf")

    def add(self, value: float | None, evaluation_periods: int) -> None:
        self.values.append(value)
        while len(self.values) > evaluation_periods:
            self.values.popleft()

    def in_alarm(self, spec: dict[str, Any]) -> bool:
        """M of the last N datapoints breach (missing data counts as not breaching)."""
        compare = COMPARE.get(spec.get("ComparisonOperator", ""))
        if compare is None:
            return False
        needed = int(spec.get("DatapointsToAlarm") or spec.get("EvaluationPeriods") or 1)
        threshold = float(spec.get("Threshold", 0))
        breaching = sum(1 for v in self.values if v is not None and compare(v, threshold))
        return breaching >= needed

    def state_value(self, spec: dict[str, Any]) -> str:
        if not self.present():
            return "INSUFFICIENT_DATA"
        return "ALARM" if self.in_alarm(spec) else "OK"

    def reason(self, spec: dict[str, Any]) -> str:
        shown = ", ".join(f"{v:g}" for v in self.present())
        return (
            f"Threshold Crossed: datapoints [{shown}] against the threshold "
            f"({float(spec.get('Threshold', 0)):g}) with {spec.get('ComparisonOperator')}."
        )

    def present(self) -> list[float]:
        return [v for v in self.values if v is not None]
