"""Scalable targets, scaling policies and scaling activities as rows of the resource table.

A target is one row (kind `scalable-target`, named by its ResourceId); its scaling activities
live in its `state`, newest first and bounded, so they go when the target is deregistered, as on
AWS. A policy is one row (kind `scaling-policy`) named by a digest of its target and name, since
policy names may be longer than a row's name; a scheduled action likewise (kind
`scheduled-action`), its next run in its `state`.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sabio.autoscaling.dimensions import INSTANCE_COUNT, dimension
from sabio.resources import SCALABLE_TARGET, SCALING_POLICY, Kind
from sabio.store.entities import Resource
from sabio.store.repository import AlreadyExists, Repository

NAMESPACE = "sagemaker"
DIMENSION = INSTANCE_COUNT
MAX_ACTIVITIES = 100
MAX_NOT_SCALED = 20

PENDING = "Pending"
IN_PROGRESS = "InProgress"
SUCCESSFUL = "Successful"
FAILED = "Failed"
OVERRIDDEN = "Overridden"

SCHEDULED_ACTION = Kind("scheduled-action", "scheduled-action", "scheduled action")


@dataclass(frozen=True)
class Arns:
    region: str
    account_id: str

    def scalable_target(self) -> str:
        ident = uuid.uuid4().hex + uuid.uuid4().hex[:4]
        prefix = f"arn:aws:application-autoscaling:{self.region}:{self.account_id}"
        return f"{prefix}:scalable-target/{ident}"

    def policy(self, resource_id: str, name: str) -> str:
        return (
            f"arn:aws:autoscaling:{self.region}:{self.account_id}:scalingPolicy:{uuid.uuid4()}:"
            f"resource/{NAMESPACE}/{resource_id}:policyName/{name}"
        )

    def scheduled_action(self, resource_id: str, name: str) -> str:
        return (
            f"arn:aws:autoscaling:{self.region}:{self.account_id}:scheduledAction:"
            f"{uuid.uuid4()}:resource/{NAMESPACE}/{resource_id}:scheduledActionName/{name}"
        )

    def alarm(self, name: str) -> str:
        return f"arn:aws:cloudwatch:{self.region}:{self.account_id}:alarm:{name}"

    def policy_row(self, key: str) -> str:
        return f"arn:aws:autoscaling:{self.region}:{self.account_id}:scalingPolicyRow/{key}"


def policy_key(resource_id: str, name: str) -> str:
    return hashlib.sha256(f"{resource_id.lower()}\n{name}".encode()).hexdigest()[:48]


def scheduled_action_key(resource_id: str, name: str) -> str:
    return policy_key(resource_id, name)


class Records:
    """Reads and writes targets and policies; every write of a target's state goes through
    `change_state`, which re-reads the row so concurrent writers do not lose activities."""

    def __init__(self, repository: Repository, arns: Arns) -> None:
        self.repository = repository
        self.arns = arns

    # Targets

    def target(self, resource_id: str) -> Resource | None:
        return self.repository.get(SCALABLE_TARGET.key, resource_id)

    def targets(self) -> list[Resource]:
        return self.repository.all(SCALABLE_TARGET.key)

    def create_target(self, resource_id: str, spec: dict[str, Any]) -> Resource:
        now = time.time()
        arn = self.arns.scalable_target()
        row = Resource(SCALABLE_TARGET.key, resource_id, arn, spec, now, now, None, {})
        try:
            return self.repository.create(row)
        except AlreadyExists:
            existing = self.target(resource_id)
            assert existing is not None
            return existing

    def update_target_spec(self, resource_id: str, spec: dict[str, Any]) -> Resource | None:
        return self.repository.update(SCALABLE_TARGET.key, resource_id, spec=spec)

    def delete_target(self, resource_id: str) -> bool:
        for policy in self.policies(resource_id):
            self.repository.delete(SCALING_POLICY.key, policy.name)
        for action in self.repository.all(SCHEDULED_ACTION.key):
            if action.spec["ResourceId"].lower() == resource_id.lower():
                self.repository.delete(SCHEDULED_ACTION.key, action.name)
        return self.repository.delete(SCALABLE_TARGET.key, resource_id)

    def change_state(
        self, resource_id: str, change: Callable[[dict[str, Any]], None]
    ) -> Resource | None:
        current = self.target(resource_id)
        if current is None:
            return None
        state = dict(current.state)
        change(state)
        return self.repository.update(SCALABLE_TARGET.key, resource_id, state=state)

    # Policies

    def policies(self, resource_id: str | None = None) -> list[Resource]:
        found = self.repository.all(SCALING_POLICY.key)
        if resource_id is None:
            return found
        return [p for p in found if p.spec["ResourceId"].lower() == resource_id.lower()]

    def policy(self, resource_id: str, name: str) -> Resource | None:
        return self.repository.get(SCALING_POLICY.key, policy_key(resource_id, name))

    def put_policy(self, resource_id: str, name: str, spec: dict[str, Any]) -> Resource:
        key = policy_key(resource_id, name)
        existing = self.policy(resource_id, name)
        if existing is not None:
            updated = self.repository.update(SCALING_POLICY.key, key, spec=spec)
            if updated is not None:
                return updated
        now = time.time()
        row = Resource(SCALING_POLICY.key, key, self.arns.policy_row(key), spec, now, now)
        return self.repository.create(row)

    def delete_policy(self, resource_id: str, name: str) -> bool:
        return self.repository.delete(SCALING_POLICY.key, policy_key(resource_id, name))


# Activities (plain dicts in the target's state, shaped as the wire's ScalingActivity)


def new_activity(
    resource_id: str,
    desired: int,
    cause: str,
    *,
    status: str = PENDING,
    scalable_dimension: str = DIMENSION,
) -> dict[str, Any]:
    noun = dimension(scalable_dimension).noun
    return {
        "ActivityId": str(uuid.uuid4()),
        "ServiceNamespace": NAMESPACE,
        "ResourceId": resource_id,
        "ScalableDimension": scalable_dimension,
        "Description": f"Setting desired {noun} to {desired}.",
        "Cause": cause,
        "StartTime": time.time(),
        "StatusCode": status,
        "Desired": desired,
    }


def add_activity(state: dict[str, Any], activity: dict[str, Any]) -> None:
    """Newest first; a pending change that was never applied is overridden by a newer one."""
    activities = list(state.get("Activities", []))
    for old in activities:
        if old["StatusCode"] == PENDING:
            finish(old, OVERRIDDEN, "Overridden by a newer scaling activity.")
    state["Activities"] = [activity, *activities][:MAX_ACTIVITIES]


def add_not_scaled(state: dict[str, Any], activity: dict[str, Any]) -> None:
    state["NotScaled"] = [activity, *state.get("NotScaled", [])][:MAX_NOT_SCALED]


def finish(activity: dict[str, Any], status: str, message: str) -> None:
    activity["StatusCode"] = status
    activity["StatusMessage"] = message
    activity["EndTime"] = time.time()


def find_activity(state: dict[str, Any], activity_id: str) -> dict[str, Any] | None:
    for activity in state.get("Activities", []):
        if activity["ActivityId"] == activity_id:
            return activity  # type: ignore[no-any-return]
    return None


def failed_message(desired: int, reason: str, scalable_dimension: str = DIMENSION) -> str:
    noun = dimension(scalable_dimension).noun
    return f"Failed to set desired {noun} to {desired}. Reason: {reason}"


def wire_activity(activity: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in activity.items() if k not in ("Desired", "Direction", "Capped")}
