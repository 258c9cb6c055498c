"""The autoscaler: a loop in the server that evaluates every scaling policy against its metric
and changes variants' desired instance counts (or a serverless variant's provisioned
concurrency, never above its MaxConcurrency) through UpdateEndpointWeightsAndCapacities, the
path a user's own call takes, so the endpoint controller starts and stops the workers.

Each change is a scaling activity on its target: `Pending` until the endpoint can take it (not
while it is Updating), `InProgress` until the endpoint is InService with the new count, then
`Successful` (or `Failed` with the reason). Metrics are read on the event loop, where the
runtime router writes them; the store is read and written in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sabio.autoscaling import policies, records
from sabio.autoscaling.alarms import AlarmState
from sabio.autoscaling.changes import Changes, View
from sabio.autoscaling.records import Records
from sabio.autoscaling.scheduled import ScheduledRunner
from sabio.autoscaling.service import parse_resource_id
from sabio.autoscaling.signals import MetricSource
from sabio.endpoints.service import IN_SERVICE, EndpointService
from sabio.reconcile import ReconcileLoop
from sabio.resources import ENDPOINT, METRIC_ALARM
from sabio.store.entities import Resource
from sabio.telemetry.endpoint_metrics import NAMESPACE

log = logging.getLogger("sabio.autoscaling")


@dataclass
class Streak:
    """A target tracking policy's alarms: consecutive datapoints above and below the target."""

    high: int = 0
    low: int = 0
    last: float = float("-inf")
    value: float | None = None


class Scaler(ReconcileLoop):
    def __init__(
        self,
        records: Records,
        endpoints: EndpointService,
        sources: Sequence[MetricSource],
        *,
        interval: float,
        period: float,
        scale_out_datapoints: int,
        scale_in_datapoints: int,
    ) -> None:
        super().__init__(interval)
        self.records = records
        self.changes = Changes(records, endpoints)
        self.scheduled = ScheduledRunner(records)
        self.sources = list(sources)
        self.period = period
        self.out_datapoints = scale_out_datapoints
        self.in_datapoints = scale_in_datapoints
        self._streaks: dict[str, Streak] = {}
        self._alarms: dict[str, AlarmState] = {}
        self._step_last: dict[str, float] = {}
        self._idle = False

    async def stop(self) -> None:
        await self.stop_loop()

    async def reconcile(self) -> None:
        # With no scalable target and no alarm there is nothing to evaluate until one is
        # registered or put, which notifies.
        if self._idle and not self.must_read():
            return
        views, alarms = await asyncio.to_thread(self._load)
        self._idle = not views and not alarms
        now = time.monotonic()
        transitions = self._watch_alarms(alarms, now)
        for view in views:
            self._evaluate(view, alarms, now)
        await asyncio.to_thread(self._act, views, transitions)

    # Reading (worker thread)

    def _load(self) -> tuple[list[View], list[Resource]]:
        # Scheduled actions first, so this pass sees the ranges and activities they set.
        self.scheduled.run_due(time.time())
        repository = self.records.repository
        policies_by_target: dict[str, list[Resource]] = {}
        for policy in self.records.policies():
            policies_by_target.setdefault(policy.spec["ResourceId"].lower(), []).append(policy)
        views = []
        for target in self.records.targets():
            endpoint_name, variant_name = parse_resource_id(target.name) or ("", "")
            endpoint = repository.get(ENDPOINT.key, endpoint_name)
            view = View(target, endpoint, policies_by_target.get(target.name.lower(), []))
            if endpoint is not None:
                for variant in endpoint.spec["Config"]["ProductionVariants"]:
                    if variant["VariantName"] == variant_name:
                        view.variant = variant
            views.append(view)
        return views, repository.all(METRIC_ALARM.key)

    # Deciding (event loop: metric sources are read here)

    def _metric(
        self, namespace: str, name: str, dimensions: dict[str, str], statistic: str, period: float
    ) -> float | None:
        for source in self.sources:
            value = source.metric_value(namespace, name, dimensions, statistic, period)
            if value is not None:
                return value
        return None

    def _evaluate(self, view: View, alarms: list[Resource], now: float) -> None:
        endpoint, variant = view.endpoint, view.variant
        if endpoint is None or variant is None or endpoint.status != IN_SERVICE:
            return
        if any(
            a["StatusCode"] in (records.PENDING, records.IN_PROGRESS)
            for a in view.target.state.get("Activities", [])
        ):
            return
        dimension = view.dimension
        if not dimension.fits(variant):
            return  # the variant changed kind (UpdateEndpoint); its target no longer applies
        current = dimension.current(variant)
        outs: list[tuple[int, str]] = []
        ins: list[tuple[int, str]] = []
        tracking_ins: list[tuple[int, str]] = []
        tracking_ready = True
        for policy in view.policies:
            spec = policy.spec
            if spec["PolicyType"] == "TargetTrackingScaling":
                out, in_, ready = self._tracking(view, spec, current, now)
                tracking_ready = tracking_ready and ready
                outs += out
                tracking_ins += in_
            else:
                for desired, cause in self._stepping(view, spec, alarms, current, now):
                    (outs if desired > current else ins).append((desired, cause))
        suspended = view.target.spec.get("SuspendedState") or {}
        state = view.target.state
        # The largest capacity wins; target tracking scales in only when all its policies agree.
        if tracking_ready:
            ins += tracking_ins
        if outs and not suspended.get("DynamicScalingOutSuspended"):
            view.proposal = max(outs)
        elif ins and not suspended.get("DynamicScalingInSuspended"):
            view.proposal = max(ins)
        if view.proposal is None:
            return
        desired, cause = view.proposal
        minimum, maximum = view.target.spec["MinCapacity"], view.target.spec["MaxCapacity"]
        clamped = policies.clamp(desired, minimum, maximum)
        ceiling = dimension.ceiling(variant)
        if ceiling is not None and clamped > ceiling:
            # A serverless variant takes no more provisioned concurrency than MaxConcurrency.
            clamped = max(ceiling, current)
            maximum = min(maximum, ceiling)
            view.extra["capped"] = (
                f"capped at the variant's MaxConcurrency of {ceiling}, below the scalable "
                f"target's MaxCapacity of {view.target.spec['MaxCapacity']}"
            )
        if clamped == current:
            code = "AlreadyAtMaxCapacity" if desired > current else "AlreadyAtMinCapacity"
            newest = (state.get("NotScaled") or [{}])[0]
            if (newest.get("NotScaledReasons") or [{}])[0].get("Code") != code:
                activity = records.new_activity(
                    view.target.name, desired, cause, scalable_dimension=dimension.name
                )
                records.finish(
                    activity, records.FAILED, records.failed_message(desired, code, dimension.name)
                )
                activity["NotScaledReasons"] = [
                    {"Code": code, "MaxCapacity": maximum, "MinCapacity": minimum,
                     "CurrentCapacity": current}
                ]  # fmt: skip
                view.not_scaled = activity
            view.proposal = None
            return
        view.proposal = (clamped, cause)
        view.extra["direction"] = "out" if clamped > current else "in"
        for policy in view.policies:
            self._streaks.pop(policy.spec["PolicyARN"], None)

    def _tracking(
        self, view: View, spec: dict[str, Any], current: int, now: float
    ) -> tuple[list[tuple[int, str]], list[tuple[int, str]], bool]:
        """A target tracking policy's scale out and scale in proposals, and whether it agrees
        to a scale in (AWS scales in only when every target tracking policy is ready to)."""
        config = spec["TargetTrackingScalingPolicyConfiguration"]
        streak = self._streaks.setdefault(spec["PolicyARN"], Streak())
        if now - streak.last >= self.period * 0.999:
            streak.last = now
            streak.value = self._tracked_value(view, config)
            if streak.value is None:
                streak.high = streak.low = 0
            else:
                breach = policies.breach(streak.value, float(config["TargetValue"]))
                streak.high = streak.high + 1 if breach.high else 0
                streak.low = streak.low + 1 if breach.low else 0
        value, target = streak.value, float(config["TargetValue"])
        alarms = {
            which: a["AlarmName"]
            for a in spec["Alarms"]
            for which in ("AlarmHigh", "AlarmLow")
            if f"-{which}-" in a["AlarmName"]
        }
        state = view.target.state
        wall = time.time()
        since_out = wall - float(state.get("LastScaleOut", 0))
        since_in = wall - float(state.get("LastScaleIn", 0))
        outs, ins = [], []
        if value is not None and streak.high >= self.out_datapoints:
            desired = policies.tracking_scale_out(current, value, target)
            if desired is not None and since_out >= int(config["ScaleOutCooldown"]):
                outs.append((desired, _cause(alarms.get("AlarmHigh", ""), spec["PolicyName"])))
        ready = False
        if (
            value is not None
            and streak.low >= self.in_datapoints
            and not config.get("DisableScaleIn")
        ):
            desired = policies.tracking_scale_in(current, value, target)
            cooldown = int(config["ScaleInCooldown"])
            if desired is not None and since_in >= cooldown and since_out >= cooldown:
                ins.append((desired, _cause(alarms.get("AlarmLow", ""), spec["PolicyName"])))
                ready = True
        return outs, ins, ready or bool(config.get("DisableScaleIn"))

    def _tracked_value(self, view: View, config: dict[str, Any]) -> float | None:
        endpoint_name, variant_name = parse_resource_id(view.target.name) or ("", "")
        customized = config.get("CustomizedMetricSpecification")
        if customized is None:
            tracked = view.dimension
            dimensions = {"EndpointName": endpoint_name, "VariantName": variant_name}
            return self._metric(
                NAMESPACE, tracked.metric, dimensions, tracked.statistic, self.period
            )
        dimensions = {d["Name"]: d["Value"] for d in customized.get("Dimensions") or []}
        return self._metric(
            customized["Namespace"],
            customized["MetricName"],
            dimensions,
            customized["Statistic"],
            self.period,
        )

    def _stepping(
        self,
        view: View,
        spec: dict[str, Any],
        alarms: list[Resource],
        current: int,
        now: float,
    ) -> list[tuple[int, str]]:
        """What each alarm that names this step policy asks for while it is in ALARM."""
        config = spec["StepScalingPolicyConfiguration"]
        found = []
        for alarm in alarms:
            if spec["PolicyARN"] not in (alarm.spec.get("AlarmActions") or []):
                continue
            if alarm.spec.get("ActionsEnabled") is False:
                continue
            state = self._alarm_state(alarm, now)
            if not state.in_alarm(alarm.spec):
                continue
            last = self._step_last.get(spec["PolicyARN"], float("-inf"))
            if time.time() - last < int(config.get("Cooldown", 0)):
                continue
            value = policies.aggregate(state.present(), config["MetricAggregationType"])
            step = policies.step_for(
                config["StepAdjustments"], value - float(alarm.spec["Threshold"])
            )
            if step is None:
                continue
            desired = policies.step_capacity(
                current,
                config["AdjustmentType"],
                int(step["ScalingAdjustment"]),
                config.get("MinAdjustmentMagnitude"),
            )
            if desired != current:
                found.append((desired, _cause(alarm.name, spec["PolicyName"])))
                self._step_last[spec["PolicyARN"]] = time.time()
        return found

    def _watch_alarms(self, alarms: list[Resource], now: float) -> list[tuple[str, str, str]]:
        """Take every alarm's datapoint when due; the alarms whose state changed."""
        for name in set(self._alarms) - {a.name for a in alarms}:
            del self._alarms[name]
        changed = []
        for alarm in alarms:
            state = self._alarm_state(alarm, now)
            value = state.state_value(alarm.spec)
            if value != alarm.status:
                changed.append((alarm.name, value, state.reason(alarm.spec)))
        return changed

    def _alarm_state(self, alarm: Resource, now: float) -> AlarmState:
        state = self._alarms.setdefault(alarm.name, AlarmState())
        period = float(alarm.spec.get("Period") or 60)
        if now - state.last >= period * 0.999:
            state.last = now
            dimensions = {d["Name"]: d["Value"] for d in alarm.spec.get("Dimensions") or []}
            value = self._metric(
                alarm.spec.get("Namespace", ""),
                alarm.spec.get("MetricName", ""),
                dimensions,
                alarm.spec.get("Statistic") or "Average",
                period,
            )
            state.add(value, int(alarm.spec.get("EvaluationPeriods") or 1))
        return state

    # Acting (worker thread)

    def _act(self, views: list[View], alarm_transitions: list[tuple[str, str, str]]) -> None:
        for name, value, reason in alarm_transitions:
            state = {"StateReason": reason, "Updated": time.time()}
            self.records.repository.update(METRIC_ALARM.key, name, status=value, state=state)
        for view in views:
            try:
                if not self.changes.act(view):
                    for policy in view.policies:
                        self._streaks.pop(policy.spec["PolicyARN"], None)
            except Exception:
                log.exception("autoscaling of %s failed; retrying", view.target.name)


def _cause(alarm: str, policy: str) -> str:
    return f"monitor alarm {alarm} in state ALARM triggered policy {policy}"
