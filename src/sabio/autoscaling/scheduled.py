"""Running scheduled actions when they are due: the autoscaler calls `run_due` at the start of
each pass, so a new range and the activity it starts are seen by the same pass.

A run sets the scalable target's MinCapacity and MaxCapacity to the action's (either may be
left as it was); when the variant's capacity is then outside the range, a Pending activity
takes it to the nearest bound, and the autoscaler applies it as it applies a policy's. Each
action's next run is kept in its row (`state.NextRun`), so a restart neither loses nor
repeats runs; one missed while the server was down runs once when it is back.
"""

from __future__ import annotations

import logging
from typing import Any

from sabio.autoscaling import records, schedules
from sabio.autoscaling.dimensions import dimension
from sabio.autoscaling.records import SCHEDULED_ACTION, Records
from sabio.autoscaling.service import parse_resource_id
from sabio.resources import ENDPOINT
from sabio.store.entities import Resource

log = logging.getLogger("sabio.autoscaling")


def first_run(spec: dict[str, Any], now: float) -> float | None:
    """When an action just put (or changed) runs first; raises ScheduleError."""
    schedule = schedules.parse(spec["Schedule"], spec.get("Timezone"))
    return schedules.next_run(
        schedule, now, anchor=now, start=spec.get("StartTime"), end=spec.get("EndTime")
    )


class ScheduledRunner:
    def __init__(self, records: Records) -> None:
        self.records = records

    def run_due(self, now: float) -> None:
        for action in self.records.repository.all(SCHEDULED_ACTION.key):
            due = action.state.get("NextRun")
            if due is None or due > now:
                continue
            try:
                self._run(action, now)
            except Exception:
                log.exception("scheduled action %s failed", action.spec["ScheduledActionName"])
            self._advance(action, due, now)

    def _advance(self, action: Resource, due: float, now: float) -> None:
        spec = action.spec
        following: float | None = None
        try:
            following = schedules.next_run(
                schedules.parse(spec["Schedule"], spec.get("Timezone")),
                max(due, now),
                anchor=float(action.state.get("Anchor", spec["CreationTime"])),
                start=spec.get("StartTime"),
                end=spec.get("EndTime"),
            )
        except schedules.ScheduleError as error:  # e.g. its time zone left the system's data
            log.warning("scheduled action %s will not run again: %s", action.name, error)
        current = self.records.repository.get(SCHEDULED_ACTION.key, action.name)
        if current is None or current.spec != spec:
            return  # deleted or put again meanwhile: that put decided the next run
        state = {**current.state, "NextRun": following, "LastRun": now}
        self.records.repository.update(SCHEDULED_ACTION.key, action.name, state=state)

    def _run(self, action: Resource, now: float) -> None:
        spec = action.spec
        name, resource_id = spec["ScheduledActionName"], spec["ResourceId"]
        target = self.records.target(resource_id)
        if target is None or target.spec.get("ScalableDimension") != spec["ScalableDimension"]:
            return
        if (target.spec.get("SuspendedState") or {}).get("ScheduledScalingSuspended"):
            log.info("scheduled action %s skipped: scheduled scaling is suspended", name)
            return
        wanted = spec.get("ScalableTargetAction") or {}
        minimum = int(wanted.get("MinCapacity", target.spec["MinCapacity"]))
        maximum = int(wanted.get("MaxCapacity", target.spec["MaxCapacity"]))
        if minimum > maximum:
            log.warning(
                "scheduled action %s not run: minimum capacity %d would exceed maximum %d",
                name,
                minimum,
                maximum,
            )
            return
        log.info("scheduled action %s sets %s to %d-%d", name, resource_id, minimum, maximum)
        new_spec = {**target.spec, "MinCapacity": minimum, "MaxCapacity": maximum}
        self.records.update_target_spec(target.name, new_spec)
        current = self._capacity(target)
        if current is None or minimum <= current <= maximum:
            return
        desired, bound = (minimum, "minimum") if current < minimum else (maximum, "maximum")
        activity = records.new_activity(
            target.name,
            desired,
            f"{bound} capacity was set to {desired} by scheduled action {name}",
            scalable_dimension=target.spec["ScalableDimension"],
        )
        activity["Direction"] = "out" if desired > current else "in"
        self.records.change_state(target.name, lambda state: records.add_activity(state, activity))

    def _capacity(self, target: Resource) -> int | None:
        endpoint_name, variant_name = parse_resource_id(target.name) or ("", "")
        endpoint = self.records.repository.get(ENDPOINT.key, endpoint_name)
        if endpoint is None:
            return None
        scaled = dimension(target.spec.get("ScalableDimension"))
        for variant in endpoint.spec["Config"]["ProductionVariants"]:
            if variant["VariantName"] == variant_name and scaled.fits(variant):
                return scaled.current(variant)
        return None
