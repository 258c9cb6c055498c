"""The Application Auto Scaling operations SageMaker users call, for endpoint variants.

They record scalable targets and policies and return; the autoscaler (`scaler.py`) acts on them.
Only `ServiceNamespace=sagemaker`, the variant dimensions of `dimensions.py` (instance count of a
variant on instances, provisioned concurrency of a serverless one) and ResourceIds
`endpoint/<endpoint>/variant/<variant>` are served. A variant has one target: the dimension its
kind has.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sabio.autoscaling import records, validation
from sabio.autoscaling.dimensions import DIMENSIONS, Dimension
from sabio.autoscaling.errors import InvalidNextTokenError, ObjectNotFoundError, target_not_found
from sabio.autoscaling.records import NAMESPACE, Records
from sabio.errors import ValidationError
from sabio.resources import ENDPOINT, METRIC_ALARM
from sabio.store.entities import Resource

MAX_RESULTS = 50
UNSUPPORTED = "Unsupported service namespace, resource type or scalable dimension"


def parse_resource_id(resource_id: str) -> tuple[str, str] | None:
    """`(endpoint, variant)` of `endpoint/<endpoint>/variant/<variant>`, else None."""
    parts = resource_id.split("/")
    if len(parts) != 4 or parts[0] != "endpoint" or parts[2] != "variant":
        return None
    if not parts[1] or not parts[3]:
        return None
    return parts[1], parts[3]


class ScalingService:
    def __init__(self, records: Records, notify: Callable[[], None]) -> None:
        self.records = records
        self.notify = notify

    def operations(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        # Imported here: the scheduled action operations build on this module's helpers.
        from sabio.autoscaling.scheduled_actions import ScheduledActionService

        return {
            "RegisterScalableTarget": self.register_scalable_target,
            "DescribeScalableTargets": self.describe_scalable_targets,
            "DeregisterScalableTarget": self.deregister_scalable_target,
            "PutScalingPolicy": self.put_scaling_policy,
            "DescribeScalingPolicies": self.describe_scaling_policies,
            "DeleteScalingPolicy": self.delete_scaling_policy,
            "DescribeScalingActivities": self.describe_scaling_activities,
            **ScheduledActionService(self).operations(),
        }

    # Scalable targets

    def register_scalable_target(self, p: dict[str, Any]) -> dict[str, Any]:
        resource_id, dimension = _supported(p)
        variant = self._variant(resource_id, dimension)
        existing = self._target(resource_id, dimension)
        stale = self.records.target(resource_id) if existing is None else None
        if stale is not None:
            # The variant changed kind (UpdateEndpoint) under a target of its old dimension;
            # a variant has one target, so that one must go before this one is registered.
            old = stale.spec.get("ScalableDimension")
            raise ValidationError(
                f"Variant {resource_id} already has a scalable target for {old}, which no "
                "longer applies to it; deregister that target first (DeregisterScalableTarget "
                f"with ScalableDimension {old})."
            )
        spec = dict(existing.spec) if existing is not None else {}
        if existing is None and ("MinCapacity" not in p or "MaxCapacity" not in p):
            raise ValidationError(
                "MinCapacity and MaxCapacity are required when registering a new scalable target."
            )
        for member in ("MinCapacity", "MaxCapacity"):
            if member in p:
                spec[member] = int(p[member])
        minimum, maximum = spec["MinCapacity"], spec["MaxCapacity"]
        if minimum < 0 or maximum < 0:
            raise ValidationError("Capacity values must be greater than or equal to 0.")
        if minimum > maximum:
            raise ValidationError(
                f"Minimum capacity {minimum} cannot be greater than maximum capacity {maximum}."
            )
        if maximum < 1:
            raise ValidationError("MaxCapacity must be at least 1 for a SageMaker variant.")
        if minimum < 1 and dimension.serverless:
            raise ValidationError(
                f"MinCapacity must be at least 1 for scalable dimension {dimension.name}."
            )
        if minimum < 1 and not variant["Async"]:
            raise ValidationError(
                "MinCapacity 0 is only supported for variants of asynchronous inference "
                "endpoints; the minimum for this variant is 1."
            )
        suspended = dict(spec.get("SuspendedState") or {})
        suspended.update(p.get("SuspendedState") or {})
        spec.update(
            {
                "ServiceNamespace": NAMESPACE,
                "ResourceId": resource_id,
                "ScalableDimension": dimension.name,
                "SuspendedState": {
                    key: bool(suspended.get(key, False))
                    for key in (
                        "DynamicScalingInSuspended",
                        "DynamicScalingOutSuspended",
                        "ScheduledScalingSuspended",
                    )
                },
                "RoleARN": p.get("RoleARN")
                or spec.get("RoleARN")
                or _service_linked_role(self.records.arns.account_id),
            }
        )
        if existing is None:
            target = self.records.create_target(resource_id, spec)
        else:
            target = self.records.update_target_spec(resource_id, spec) or existing
        self._clamp_into_range(resource_id, dimension, variant["Count"], minimum, maximum)
        return {"ScalableTargetARN": target.arn}

    def _clamp_into_range(
        self, resource_id: str, dimension: Dimension, current: int, minimum: int, maximum: int
    ) -> None:
        """Registering a range that excludes the current count is itself a scaling activity."""
        if minimum <= current <= maximum:
            return
        desired, bound = (minimum, "minimum") if current < minimum else (maximum, "maximum")
        activity = records.new_activity(
            resource_id,
            desired,
            f"{bound} capacity was set to {desired}",
            scalable_dimension=dimension.name,
        )
        activity["Direction"] = "out" if desired > current else "in"
        self.records.change_state(resource_id, lambda state: records.add_activity(state, activity))
        self.notify()

    def describe_scalable_targets(self, p: dict[str, Any]) -> dict[str, Any]:
        _namespace(p)
        wanted = {r.lower() for r in p.get("ResourceIds") or []}
        found = [
            t
            for t in self.records.targets()
            if (not wanted or t.name.lower() in wanted) and _dimension_matches(p, t.spec)
        ]
        page, token = _page(sorted(found, key=lambda t: t.created_at), p)
        response: dict[str, Any] = {"ScalableTargets": [_target_wire(t) for t in page]}
        if token:
            response["NextToken"] = token
        return response

    def deregister_scalable_target(self, p: dict[str, Any]) -> dict[str, Any]:
        resource_id, dimension = _supported(p)
        target = self._target(resource_id, dimension)
        if target is None or not self.records.delete_target(target.name):
            raise target_not_found(resource_id, NAMESPACE, dimension.name)
        self.notify()
        return {}

    # Scaling policies

    def put_scaling_policy(self, p: dict[str, Any]) -> dict[str, Any]:
        resource_id, dimension = _supported(p)
        target = self._target(resource_id, dimension)
        if target is None:
            raise target_not_found(resource_id, NAMESPACE, dimension.name)
        resource_id = target.name
        policy_type = p.get("PolicyType") or "StepScaling"
        spec: dict[str, Any] = {
            "PolicyName": p["PolicyName"],
            "ServiceNamespace": NAMESPACE,
            "ResourceId": resource_id,
            "ScalableDimension": dimension.name,
            "PolicyType": policy_type,
        }
        if policy_type == "TargetTrackingScaling":
            spec["TargetTrackingScalingPolicyConfiguration"] = validation.target_tracking(
                p, dimension
            )
        elif policy_type == "StepScaling":
            spec["StepScalingPolicyConfiguration"] = validation.step_scaling(p)
        else:
            raise ValidationError(
                f"Policy type {policy_type} is not supported for scalable dimension "
                f"{dimension.name}."
            )
        existing = self.records.policy(resource_id, p["PolicyName"])
        if existing is not None and existing.spec["PolicyType"] == policy_type:
            spec["PolicyARN"] = existing.spec["PolicyARN"]
            spec["CreationTime"] = existing.spec["CreationTime"]
            spec["Alarms"] = existing.spec["Alarms"]
        else:
            spec["PolicyARN"] = self.records.arns.policy(resource_id, p["PolicyName"])
            spec["CreationTime"] = time.time()
            spec["Alarms"] = self._alarms(resource_id, policy_type)
        self.records.put_policy(resource_id, p["PolicyName"], spec)
        self.notify()
        response: dict[str, Any] = {"PolicyARN": spec["PolicyARN"]}
        if spec["Alarms"]:
            response["Alarms"] = spec["Alarms"]
        return response

    def _alarms(self, resource_id: str, policy_type: str) -> list[dict[str, str]]:
        """Target tracking policies own a high and a low alarm, named as AWS names them; step
        policies are invoked by alarms their users create."""
        if policy_type != "TargetTrackingScaling":
            return []
        alarms = []
        for which in ("AlarmHigh", "AlarmLow"):
            name = f"TargetTracking-{resource_id}-{which}-{uuid.uuid4()}"
            alarms.append({"AlarmName": name, "AlarmARN": self.records.arns.alarm(name)})
        return alarms

    def describe_scaling_policies(self, p: dict[str, Any]) -> dict[str, Any]:
        _namespace(p)
        names = set(p.get("PolicyNames") or [])
        resource_id = (p.get("ResourceId") or "").lower()
        found = [
            policy
            for policy in self.records.policies()
            if (not names or policy.spec["PolicyName"] in names)
            and (not resource_id or policy.spec["ResourceId"].lower() == resource_id)
            and _dimension_matches(p, policy.spec)
        ]
        page, token = _page(sorted(found, key=lambda r: r.spec["CreationTime"]), p)
        # A step policy's alarms are the metric alarms whose actions name it.
        invoking: dict[str, list[dict[str, str]]] = {}
        for alarm in self.records.repository.all(METRIC_ALARM.key):
            for action in alarm.spec.get("AlarmActions") or []:
                invoking.setdefault(action, []).append(
                    {"AlarmName": alarm.name, "AlarmARN": alarm.arn}
                )
        policies = [
            {**r.spec, "Alarms": r.spec.get("Alarms") or invoking.get(r.spec["PolicyARN"], [])}
            for r in page
        ]
        response: dict[str, Any] = {"ScalingPolicies": policies}
        if token:
            response["NextToken"] = token
        return response

    def delete_scaling_policy(self, p: dict[str, Any]) -> dict[str, Any]:
        resource_id, dimension = _supported(p)
        policy = self.records.policy(resource_id, p["PolicyName"])
        if (
            policy is None
            or not _dimension_matches(p, policy.spec)
            or not self.records.delete_policy(resource_id, p["PolicyName"])
        ):
            raise ObjectNotFoundError(
                f"No scaling policy found for service namespace: {NAMESPACE}, resource ID: "
                f"{resource_id}, scalable dimension: {dimension.name}, policy name: "
                f"{p['PolicyName']}"
            )
        self.notify()
        return {}

    # Scaling activities

    def describe_scaling_activities(self, p: dict[str, Any]) -> dict[str, Any]:
        _namespace(p)
        resource_id = (p.get("ResourceId") or "").lower()
        found: list[dict[str, Any]] = []
        for target in self.records.targets():
            if (resource_id and target.name.lower() != resource_id) or not _dimension_matches(
                p, target.spec
            ):
                continue
            found.extend(target.state.get("Activities", []))
            if p.get("IncludeNotScaledActivities"):
                found.extend(target.state.get("NotScaled", []))
        found.sort(key=lambda a: a["StartTime"], reverse=True)
        page, token = _page(found, p)
        response: dict[str, Any] = {"ScalingActivities": [records.wire_activity(a) for a in page]}
        if token:
            response["NextToken"] = token
        return response

    # Helpers

    def _target(self, resource_id: str, dimension: Dimension) -> Resource | None:
        """The variant's target, if it is registered for this dimension."""
        target = self.records.target(resource_id)
        if target is None or target.spec.get("ScalableDimension") != dimension.name:
            return None
        return target

    def _variant(self, resource_id: str, dimension: Dimension) -> dict[str, Any]:
        """The variant a ResourceId names, if it has the dimension's capacity: its desired
        capacity and whether it is asynchronous."""
        endpoint_name, variant_name = parse_resource_id(resource_id) or ("", "")
        endpoint = self.records.repository.get(ENDPOINT.key, endpoint_name)
        if endpoint is None:
            raise ValidationError(
                f'Could not find endpoint "{endpoint_name}" for resource ID {resource_id}.'
            )
        for variant in endpoint.spec["Config"]["ProductionVariants"]:
            if variant["VariantName"] == variant_name:
                _check_fits(variant, dimension)
                return {
                    "Count": dimension.current(variant),
                    "Async": bool(endpoint.spec["Config"].get("AsyncInferenceConfig")),
                }
        raise ValidationError(
            f'Could not find variant "{variant_name}" of endpoint "{endpoint_name}" for '
            f"resource ID {resource_id}."
        )


def _namespace(p: dict[str, Any]) -> None:
    if p["ServiceNamespace"] != NAMESPACE:
        raise ValidationError(f"Service namespace {p['ServiceNamespace']} is not supported.")


def _supported(p: dict[str, Any]) -> tuple[str, Dimension]:
    resource_id: str = p["ResourceId"]
    dimension = DIMENSIONS.get(p["ScalableDimension"])
    if (
        p["ServiceNamespace"] != NAMESPACE
        or dimension is None
        or parse_resource_id(resource_id) is None
    ):
        raise ValidationError(UNSUPPORTED)
    return resource_id, dimension


def _check_fits(variant: dict[str, Any], dimension: Dimension) -> None:
    """Instance counts scale variants on instances; provisioned concurrency scales serverless
    variants that have some."""
    if dimension.fits(variant):
        return
    name = variant["VariantName"]
    if not dimension.serverless:
        raise ValidationError(
            f"Variant {name} is serverless; it has no instance count to scale with "
            f"{dimension.name}. Scale its provisioned concurrency with "
            "sagemaker:variant:DesiredProvisionedConcurrency."
        )
    if not variant.get("ServerlessConfig"):
        raise ValidationError(
            f"Variant {name} runs on instances; {dimension.name} applies only to serverless "
            "variants with ProvisionedConcurrency. Scale its instance count with "
            "sagemaker:variant:DesiredInstanceCount."
        )
    raise ValidationError(
        f"Variant {name} is serverless without ProvisionedConcurrency; {dimension.name} "
        "scales a serverless variant's ProvisionedConcurrency. Give the variant "
        "ProvisionedConcurrency first (UpdateEndpointWeightsAndCapacities with a "
        "ServerlessUpdateConfig)."
    )


def _dimension_matches(p: dict[str, Any], spec: dict[str, Any]) -> bool:
    return p.get("ScalableDimension") in (None, spec.get("ScalableDimension"))


def _service_linked_role(account_id: str) -> str:
    return (
        f"arn:aws:iam::{account_id}:role/aws-service-role/sagemaker.application-autoscaling."
        "amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
    )


def _target_wire(target: Resource) -> dict[str, Any]:
    return {**target.spec, "CreationTime": target.created_at, "ScalableTargetARN": target.arn}


def _page(items: Sequence[Any], p: dict[str, Any]) -> tuple[Sequence[Any], str | None]:
    limit = p.get("MaxResults", MAX_RESULTS)
    if not 1 <= limit <= MAX_RESULTS:
        raise ValidationError(
            f"1 validation error detected: Value '{limit}' at 'maxResults' failed to satisfy "
            f"constraint: Member must have value {'less' if limit > 1 else 'greater'} than or "
            f"equal to {MAX_RESULTS if limit > 1 else 1}"
        )
    offset = _offset(p.get("NextToken"))
    page = items[offset : offset + limit]
    more = offset + limit < len(items)
    token = base64.urlsafe_b64encode(str(offset + limit).encode()).decode() if more else None
    return page, token


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(token.encode()).decode())
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidNextTokenError("Invalid token") from None
    if offset < 0:
        raise InvalidNextTokenError("Invalid token")
    return offset
