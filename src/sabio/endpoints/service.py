"""CreateEndpoint, DescribeEndpoint, ListEndpoints, DeleteEndpoint.

These only record the desired state and return at once; the controller brings it about.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from sabio.endpoints.shadow_config import all_variants
from sabio.errors import ResourceInUseError, ResourceLimitExceededError, ValidationError
from sabio.listing import list_page
from sabio.resources import ENDPOINT, ENDPOINT_CONFIG, MODEL, Catalog
from sabio.store.entities import Resource

CREATING = "Creating"
IN_SERVICE = "InService"
UPDATING = "Updating"
DELETING = "Deleting"
FAILED = "Failed"


class EndpointService:
    def __init__(
        self, catalog: Catalog, notify: Callable[[], None], max_instances_per_endpoint: int = 8
    ) -> None:
        self.catalog = catalog
        self.notify = notify
        self.max_instances = max_instances_per_endpoint

    def operations(self) -> dict[str, Any]:
        return {
            "CreateEndpoint": self.create_endpoint,
            "DescribeEndpoint": self.describe_endpoint,
            "ListEndpoints": self.list_endpoints,
            "DeleteEndpoint": self.delete_endpoint,
            "UpdateEndpoint": self.update_endpoint,
            "UpdateEndpointWeightsAndCapacities": self.update_endpoint_weights_and_capacities,
        }

    def create_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        _check_deployment_config(request.get("DeploymentConfig"))
        spec = {
            **self._snapshot(request["EndpointConfigName"]),
            "DeploymentConfig": request.get("DeploymentConfig"),
        }
        resource = self.catalog.create(
            ENDPOINT, request["EndpointName"], spec, tags=request.get("Tags"), status=CREATING
        )
        self.notify()
        return {"EndpointArn": resource.arn}

    def describe_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        resource = self.catalog.require(ENDPOINT, request["EndpointName"])
        response: dict[str, Any] = {
            "EndpointName": resource.name,
            "EndpointArn": resource.arn,
            "EndpointConfigName": resource.spec["EndpointConfigName"],
            "EndpointStatus": resource.status,
            "CreationTime": resource.created_at,
            "LastModifiedTime": resource.updated_at,
            "ProductionVariants": _with_desired(resource, "ProductionVariants"),
            "FailureReason": resource.state.get("FailureReason"),
            "ShadowProductionVariants": _with_desired(resource, "ShadowProductionVariants"),
        }
        if resource.spec["Config"].get("AsyncInferenceConfig"):
            response["AsyncInferenceConfig"] = resource.spec["Config"]["AsyncInferenceConfig"]
        capture = resource.spec["Config"].get("DataCaptureConfig")
        if capture:
            enabled = bool(capture.get("EnableCapture", True))
            response["DataCaptureConfig"] = {
                "EnableCapture": enabled,
                "CaptureStatus": "Started" if enabled else "Stopped",
                "CurrentSamplingPercentage": capture["InitialSamplingPercentage"],
                "DestinationS3Uri": capture["DestinationS3Uri"],
                "KmsKeyId": capture.get("KmsKeyId", ""),
            }
        return response

    def list_endpoints(self, request: dict[str, Any]) -> dict[str, Any]:
        return list_page(self.catalog.repository, ENDPOINT.key, request, "Endpoints", _summary)

    def _snapshot(self, config_name: str) -> dict[str, Any]:
        """What an endpoint keeps of a config and its models, so it serves on after they are
        deleted."""
        config = self.catalog.require(ENDPOINT_CONFIG, config_name)
        models = {}
        for variant in all_variants(config.spec):
            models[variant["ModelName"]] = self.catalog.require(MODEL, variant["ModelName"]).spec
        return {"EndpointConfigName": config.name, "Config": config.spec, "Models": models}

    def update_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        """Blue/green: the controller brings the new config up beside the old and moves the
        traffic once it is healthy; if it never is, the old config keeps serving."""
        _check_deployment_config(request.get("DeploymentConfig"))
        name = request["EndpointName"]
        resource = self.catalog.require(ENDPOINT, name)
        _require_in_service(resource)
        pending = self._snapshot(request["EndpointConfigName"])
        _require_same_kind(resource, pending["Config"])
        if request.get("RetainAllVariantProperties"):
            excluded = {
                p["VariantPropertyType"]
                for p in request.get("ExcludeRetainedVariantProperties") or []
            }
            current = {v["VariantName"]: v for v in resource.spec["Config"]["ProductionVariants"]}
            for variant in pending["Config"]["ProductionVariants"]:
                old = current.get(variant["VariantName"])
                if old is None:
                    continue
                if "DesiredWeight" not in excluded:
                    variant["InitialVariantWeight"] = old.get("InitialVariantWeight", 1.0)
                if "DesiredInstanceCount" not in excluded and old.get("InitialInstanceCount"):
                    variant["InitialInstanceCount"] = old["InitialInstanceCount"]
        spec = {**resource.spec, "Pending": pending}
        if request.get("DeploymentConfig") or not request.get("RetainDeploymentConfig"):
            spec["DeploymentConfig"] = request.get("DeploymentConfig")
        return self._start_update(resource, spec)

    def _start_update(self, resource: Resource, spec: dict[str, Any]) -> dict[str, Any]:
        """Record what the endpoint should become and hand it to the controller."""
        updated = self.catalog.repository.update(
            ENDPOINT.key, resource.name, spec=spec, status=UPDATING, expect_status=(IN_SERVICE,)
        )
        if updated is None:
            raise ResourceInUseError(f'Endpoint "{resource.arn}" is being changed already.')
        self.notify()
        return {"EndpointArn": resource.arn}

    def update_endpoint_weights_and_capacities(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["EndpointName"]
        resource = self.catalog.require(ENDPOINT, name)
        _require_in_service(resource)
        spec = copy.deepcopy(resource.spec)
        _apply_desired(
            all_variants(spec["Config"]),
            request["DesiredWeightsAndCapacities"],
            self.max_instances,
        )
        return self._start_update(resource, spec)

    def delete_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["EndpointName"]
        resource = self.catalog.require(ENDPOINT, name)
        if resource.status != DELETING:
            updated = self.catalog.repository.update(ENDPOINT.key, name, status=DELETING)
            if updated is None:
                raise ValidationError(f'Could not find endpoint "{resource.arn}".')
        self.notify()
        return {}


def _require_same_kind(resource: Resource, config: dict[str, Any]) -> None:
    """SageMaker keeps an endpoint asynchronous or real-time for life: UpdateEndpoint can
    change an AsyncInferenceConfig but neither add nor remove one."""
    was = bool(resource.spec["Config"].get("AsyncInferenceConfig"))
    if was == bool(config.get("AsyncInferenceConfig")):
        return
    change = "removed from" if was else "added to"
    raise ValidationError(
        f"The AsyncInferenceConfig parameter cannot be {change} this endpoint "
        f"{resource.name}. To change the endpoint type, create a new endpoint."
    )


def _check_deployment_config(config: dict[str, Any] | None) -> None:
    """A deployment follows one update policy: blue/green or rolling, never both."""
    if config and config.get("BlueGreenUpdatePolicy") and config.get("RollingUpdatePolicy"):
        raise ValidationError(
            "DeploymentConfig can specify BlueGreenUpdatePolicy or RollingUpdatePolicy, not "
            "both: a deployment follows one update policy."
        )


def _require_in_service(resource: Resource) -> None:
    if resource.status == UPDATING:
        raise ResourceInUseError(
            f'Cannot update endpoint "{resource.arn}": another update is in progress.'
        )
    if resource.status == FAILED:
        raise ValidationError(
            f'Cannot update failed endpoint "{resource.arn}". DeleteEndpoint is the only '
            "operation that can be performed on a failed endpoint; delete it and create it "
            "again."
        )
    if resource.status != IN_SERVICE:
        raise ValidationError(
            f'Cannot update in-progress endpoint "{resource.arn}" (status {resource.status}).'
        )


def _apply_desired(
    variants: list[dict[str, Any]], desired: list[dict[str, Any]], max_instances: int
) -> None:
    """Apply DesiredWeightsAndCapacities to the endpoint's own copy of its variants."""
    by_name = {v["VariantName"].lower(): v for v in variants}
    unknown = [d["VariantName"] for d in desired if d["VariantName"].lower() not in by_name]
    if unknown:
        raise ValidationError(
            f"The variant name(s) [{', '.join(unknown)}] is/are not present in the endpoint."
        )
    seen: set[str] = set()
    for change in desired:
        key = change["VariantName"].lower()
        if key in seen:
            raise ValidationError(
                f'The variant name "{change["VariantName"]}" was non-unique within the request.'
            )
        seen.add(key)
        _check_change_fits(by_name[key], change)
    for change in desired:
        variant = by_name[change["VariantName"].lower()]
        if "DesiredWeight" in change:
            variant["InitialVariantWeight"] = float(change["DesiredWeight"])
        if "DesiredInstanceCount" in change:
            variant["InitialInstanceCount"] = int(change["DesiredInstanceCount"])
        if change.get("ServerlessUpdateConfig"):
            variant["ServerlessConfig"] = _updated_serverless(
                variant, change["ServerlessUpdateConfig"]
            )
    if sum(float(v.get("InitialVariantWeight", 1.0)) for v in variants) <= 0:
        raise ValidationError("The sum of the variant weights must be greater than 0.")
    total = sum(int(v.get("InitialInstanceCount") or 1) for v in variants)
    if total > max_instances:
        raise ResourceLimitExceededError(
            f"The endpoint would have {total} instances; this Sabio server allows at most "
            f"{max_instances} per endpoint (SABIO_MAX_INSTANCES_PER_ENDPOINT)."
        )


def _check_change_fits(variant: dict[str, Any], change: dict[str, Any]) -> None:
    """Instance counts belong to variants on instances, serverless settings to serverless
    ones (and keep provisioned concurrency within the maximum)."""
    name = variant["VariantName"]
    if variant.get("ServerlessConfig"):
        if "DesiredInstanceCount" in change:
            raise ValidationError(f"Variant {name} is serverless; it has no instance count.")
        if change.get("ServerlessUpdateConfig"):
            _updated_serverless(variant, change["ServerlessUpdateConfig"])
    elif change.get("ServerlessUpdateConfig"):
        raise ValidationError(
            f"Variant {name} runs on instances; ServerlessUpdateConfig applies only to "
            "serverless variants. Use DesiredInstanceCount to change its capacity."
        )


def _updated_serverless(variant: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """The variant's ServerlessConfig with a ServerlessUpdateConfig applied: MemorySizeInMB
    kept, members not given kept, and provisioned concurrency within the maximum."""
    config = dict(variant["ServerlessConfig"])
    for member in ("MaxConcurrency", "ProvisionedConcurrency"):
        if update.get(member) is not None:
            config[member] = int(update[member])
    provisioned = config.get("ProvisionedConcurrency")
    if provisioned is not None and provisioned > int(config["MaxConcurrency"]):
        raise ValidationError(
            f"Variant {variant['VariantName']}: ProvisionedConcurrency ({provisioned}) must be "
            f"less than or equal to MaxConcurrency ({config['MaxConcurrency']})."
        )
    return config


def _with_desired(resource: Resource, member: str) -> list[dict[str, Any]] | None:
    """The variant summaries, with the Desired values an UpdateEndpointWeightsAndCapacities in
    progress asked for; the Current ones change once it is done, as in SageMaker."""
    summaries: list[dict[str, Any]] | None = resource.state.get(member)
    if resource.status != UPDATING or resource.spec.get("Pending") or not summaries:
        return summaries
    variants = {v["VariantName"]: v for v in all_variants(resource.spec["Config"])}
    shown = []
    for summary in summaries:
        summary = dict(summary)
        variant = variants.get(summary["VariantName"])
        if variant is not None:
            summary["DesiredWeight"] = float(variant.get("InitialVariantWeight", 1.0))
            if variant.get("ServerlessConfig"):
                summary["DesiredServerlessConfig"] = variant["ServerlessConfig"]
            elif variant.get("InitialInstanceCount") is not None:
                summary["DesiredInstanceCount"] = int(variant["InitialInstanceCount"])
        shown.append(summary)
    return shown


def _summary(resource: Resource) -> dict[str, Any]:
    return {
        "EndpointName": resource.name,
        "EndpointArn": resource.arn,
        "CreationTime": resource.created_at,
        "LastModifiedTime": resource.updated_at,
        "EndpointStatus": resource.status,
    }
