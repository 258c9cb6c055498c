"""PutScheduledAction, DescribeScheduledActions and DeleteScheduledAction for endpoint variants.

They record actions and return; the autoscaler runs them when due (`scheduled.py`). As on AWS,
an action needs a registered scalable target, and putting an existing name changes only what
the request names, except StartTime and EndTime, which are cleared when left out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sabio.autoscaling import schedules
from sabio.autoscaling.errors import ObjectNotFoundError, target_not_found
from sabio.autoscaling.records import NAMESPACE, SCHEDULED_ACTION, scheduled_action_key
from sabio.autoscaling.scheduled import first_run
from sabio.autoscaling.service import (
    ScalingService,
    _dimension_matches,
    _namespace,
    _page,
    _supported,
)
from sabio.errors import ValidationError
from sabio.store.entities import Resource
from sabio.store.repository import AlreadyExists

WIRE = (
    "ScheduledActionName",
    "ScheduledActionARN",
    "ServiceNamespace",
    "Schedule",
    "Timezone",
    "ResourceId",
    "ScalableDimension",
    "StartTime",
    "EndTime",
    "ScalableTargetAction",
    "CreationTime",
)


class ScheduledActionService:
    def __init__(self, scaling: ScalingService) -> None:
        self.scaling = scaling
        self.records = scaling.records
        self.repository = scaling.records.repository

    def operations(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "PutScheduledAction": self.put_scheduled_action,
            "DescribeScheduledActions": self.describe_scheduled_actions,
            "DeleteScheduledAction": self.delete_scheduled_action,
        }

    def put_scheduled_action(self, p: dict[str, Any]) -> dict[str, Any]:
        resource_id, dimension = _supported(p)
        target = self.records.target(resource_id)
        if target is None or target.spec.get("ScalableDimension") != dimension.name:
            raise target_not_found(resource_id, NAMESPACE, dimension.name)
        name = p["ScheduledActionName"]
        key = scheduled_action_key(target.name, name)
        existing = self.repository.get(SCHEDULED_ACTION.key, key)
        spec: dict[str, Any] = dict(existing.spec) if existing is not None else {}
        if existing is None and not p.get("Schedule"):
            raise ValidationError("Schedule is required when creating a scheduled action.")
        for member in ("Schedule", "Timezone", "ScalableTargetAction"):
            if p.get(member) is not None:
                spec[member] = p[member]
        for member in ("StartTime", "EndTime"):
            spec.pop(member, None)
            if p.get(member) is not None:
                spec[member] = float(p[member])
        _check_action(spec.get("ScalableTargetAction") or {})
        if "StartTime" in spec and "EndTime" in spec and spec["StartTime"] >= spec["EndTime"]:
            raise ValidationError("EndTime must be after StartTime.")
        now = time.time()
        spec.update(
            {
                "ScheduledActionName": name,
                "ServiceNamespace": NAMESPACE,
                "ResourceId": target.name,
                "ScalableDimension": dimension.name,
            }
        )
        spec.setdefault("ScheduledActionARN", self.records.arns.scheduled_action(target.name, name))
        spec.setdefault("CreationTime", now)
        try:
            state = {"NextRun": first_run(spec, now), "Anchor": now}
        except schedules.ScheduleError as error:
            raise ValidationError(str(error)) from None
        if existing is None:
            row = Resource(
                SCHEDULED_ACTION.key, key, spec["ScheduledActionARN"], spec, now, now, None, state
            )
            try:
                self.repository.create(row)
            except AlreadyExists:
                # Put by another request at the same moment: this one changes that action.
                current = self.repository.get(SCHEDULED_ACTION.key, key)
                if current is not None:
                    for member in ("ScheduledActionARN", "CreationTime"):
                        spec[member] = current.spec[member]
                self.repository.update(SCHEDULED_ACTION.key, key, spec=spec, state=state)
        else:
            self.repository.update(SCHEDULED_ACTION.key, key, spec=spec, state=state)
        self.scaling.notify()
        return {}

    def describe_scheduled_actions(self, p: dict[str, Any]) -> dict[str, Any]:
        _namespace(p)
        names = set(p.get("ScheduledActionNames") or [])
        resource_id = (p.get("ResourceId") or "").lower()
        found = [
            action
            for action in self.repository.all(SCHEDULED_ACTION.key)
            if (not names or action.spec["ScheduledActionName"] in names)
            and (not resource_id or action.spec["ResourceId"].lower() == resource_id)
            and _dimension_matches(p, action.spec)
        ]
        page, token = _page(sorted(found, key=lambda a: a.spec["CreationTime"]), p)
        response: dict[str, Any] = {
            "ScheduledActions": [
                {k: a.spec[k] for k in WIRE if a.spec.get(k) is not None} for a in page
            ]
        }
        if token:
            response["NextToken"] = token
        return response

    def delete_scheduled_action(self, p: dict[str, Any]) -> dict[str, Any]:
        resource_id, dimension = _supported(p)
        name = p["ScheduledActionName"]
        key = scheduled_action_key(resource_id, name)
        action = self.repository.get(SCHEDULED_ACTION.key, key)
        if (
            action is None
            or not _dimension_matches(p, action.spec)
            or not self.repository.delete(SCHEDULED_ACTION.key, key)
        ):
            raise ObjectNotFoundError(
                f"No scheduled action found for service namespace: {NAMESPACE}, resource ID: "
                f"{resource_id}, scalable dimension: {dimension.name}, scheduled action name: "
                f"{name}"
            )
        return {}


def _check_action(action: dict[str, Any]) -> None:
    minimum, maximum = action.get("MinCapacity"), action.get("MaxCapacity")
    for value in (minimum, maximum):
        if value is not None and int(value) < 0:
            raise ValidationError("Capacity values must be greater than or equal to 0.")
    if minimum is not None and maximum is not None and int(minimum) > int(maximum):
        raise ValidationError(
            f"Minimum capacity {minimum} cannot be greater than maximum capacity {maximum}."
        )
