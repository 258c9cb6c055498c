"""Carrying out scaling decisions: each change becomes a scaling activity on its target and
goes to the endpoint through UpdateEndpointWeightsAndCapacities, the path a user's own call
takes (a DesiredInstanceCount, or a ServerlessUpdateConfig for provisioned concurrency); the
activity follows the endpoint until the capacity is reached or the change failed.

Runs in a worker thread (it reads and writes the store).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sabio.autoscaling import records
from sabio.autoscaling.dimensions import Dimension, dimension
from sabio.autoscaling.records import Records
from sabio.autoscaling.service import parse_resource_id
from sabio.endpoints.service import DELETING, FAILED, IN_SERVICE, EndpointService
from sabio.errors import ResourceInUseError, SabioError
from sabio.store.entities import Resource

log = logging.getLogger("sabio.autoscaling")


@dataclass
class View:
    """One target as the autoscaler saw it this round, and what it decided for it."""

    target: Resource
    endpoint: Resource | None
    policies: list[Resource]
    variant: dict[str, Any] | None = None
    proposal: tuple[int, str] | None = None
    not_scaled: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dimension(self) -> Dimension:
        return dimension(self.target.spec.get("ScalableDimension"))


class Changes:
    def __init__(self, records: Records, endpoints: EndpointService) -> None:
        self.records = records
        self.endpoints = endpoints

    def act(self, view: View) -> bool:
        """Bring the view's target one step on; False when the target was deregistered."""
        resource_id = view.target.name
        endpoint, variant = view.endpoint, view.variant
        if endpoint is None or variant is None or endpoint.status == DELETING:
            # As on AWS, deleting an endpoint deregisters its variants' scalable targets.
            log.info("deregistering scalable target %s: its variant is gone", resource_id)
            self.records.delete_target(resource_id)
            return False
        activities = view.target.state.get("Activities", [])
        running = [a for a in activities if a["StatusCode"] == records.IN_PROGRESS]
        pending = [a for a in activities if a["StatusCode"] == records.PENDING]
        if running:
            for activity in running:
                self._progress(view, activity)
            return True
        if pending:
            if endpoint.status == IN_SERVICE:
                self._apply(view, pending[0])
            elif endpoint.status == FAILED:
                message = self._failed(view, int(pending[0]["Desired"]), "the endpoint failed")
                self._finish(view, pending[0], records.FAILED, message)
            return True
        if view.not_scaled is not None:
            activity = view.not_scaled
            self.records.change_state(resource_id, lambda s: records.add_not_scaled(s, activity))
        if view.proposal is not None:
            desired, cause = view.proposal
            activity = records.new_activity(
                resource_id, desired, cause, scalable_dimension=view.dimension.name
            )
            activity["Direction"] = view.extra["direction"]
            if view.extra.get("capped"):
                activity["Capped"] = view.extra["capped"]
            self.records.change_state(resource_id, lambda s: records.add_activity(s, activity))
            self._apply(view, activity)
        return True

    def _progress(self, view: View, activity: dict[str, Any]) -> None:
        """An InProgress change: Successful once the endpoint serves the new count."""
        endpoint = view.endpoint
        assert endpoint is not None and view.variant is not None
        desired = int(activity["Desired"])
        if endpoint.status == FAILED:
            self._finish(
                view, activity, records.FAILED, self._failed(view, desired, "the endpoint failed")
            )
            return
        if endpoint.status != IN_SERVICE:
            return
        dimension = view.dimension
        served = {
            v["VariantName"]: dimension.served(v)
            for v in endpoint.state.get("ProductionVariants") or []
        }
        if dimension.current(view.variant) != desired:
            reason = endpoint.state.get("FailureReason") or "the endpoint did not take the change"
            self._finish(view, activity, records.FAILED, self._failed(view, desired, reason))
        elif served.get(view.variant["VariantName"]) == desired:
            capped = f" ({activity['Capped']})" if activity.get("Capped") else ""
            message = (
                f"Successfully set desired {dimension.noun} to {desired}{capped}. "
                "Change successfully fulfilled by sagemaker."
            )
            self._finish(view, activity, records.SUCCESSFUL, message)

    def _apply(self, view: View, activity: dict[str, Any]) -> None:
        endpoint_name, variant_name = parse_resource_id(view.target.name) or ("", "")
        desired = int(activity["Desired"])
        request = {
            "EndpointName": endpoint_name,
            "DesiredWeightsAndCapacities": [view.dimension.desired(variant_name, desired)],
        }
        try:
            self.endpoints.update_endpoint_weights_and_capacities(request)
        except ResourceInUseError:
            return  # the endpoint is being changed; stay Pending and try again
        except SabioError as error:
            self._finish(view, activity, records.FAILED, self._failed(view, desired, error.message))
            return
        log.info(
            "setting %s of %s to %d (%s)",
            view.dimension.noun,
            view.target.name,
            desired,
            activity["Cause"],
        )
        self._update(view, activity["ActivityId"], {"StatusCode": records.IN_PROGRESS})

    def _failed(self, view: View, desired: int, reason: str) -> str:
        return records.failed_message(desired, reason, view.dimension.name)

    def _finish(self, view: View, activity: dict[str, Any], status: str, message: str) -> None:
        def change(state: dict[str, Any]) -> None:
            found = records.find_activity(state, activity["ActivityId"])
            if found is None:
                return
            records.finish(found, status, message)
            if status == records.SUCCESSFUL:
                key = "LastScaleOut" if found.get("Direction") == "out" else "LastScaleIn"
                state[key] = found["EndTime"]

        self.records.change_state(view.target.name, change)

    def _update(self, view: View, activity_id: str, values: dict[str, Any]) -> None:
        def change(state: dict[str, Any]) -> None:
            found = records.find_activity(state, activity_id)
            if found is not None:
                found.update(values)

        self.records.change_state(view.target.name, change)
