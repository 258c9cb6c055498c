"""CreateEndpointConfig, DescribeEndpointConfig, ListEndpointConfigs, DeleteEndpointConfig."""

from __future__ import annotations

from typing import Any

from sabio import instance_types
from sabio.artifacts.uri import require_s3
from sabio.asyncinference.config import check_async_config
from sabio.endpoints.shadow_config import check_shadow_layout
from sabio.errors import ResourceLimitExceededError, ValidationError
from sabio.listing import list_page
from sabio.models.service import containers_of
from sabio.resources import ENDPOINT_CONFIG, MODEL, Catalog
from sabio.store.entities import Resource

_SPEC_MEMBERS = (
    "ProductionVariants",
    "DataCaptureConfig",
    "KmsKeyId",
    "AsyncInferenceConfig",
    "ExplainerConfig",
    "ShadowProductionVariants",
    "ExecutionRoleArn",
    "VpcConfig",
    "EnableNetworkIsolation",
)

_UNSUPPORTED = {
    "ExplainerConfig": "online explainability",
}


class EndpointConfigService:
    def __init__(self, catalog: Catalog, max_instances_per_endpoint: int) -> None:
        self.catalog = catalog
        self.max_instances = max_instances_per_endpoint

    def operations(self) -> dict[str, Any]:
        return {
            "CreateEndpointConfig": self.create_endpoint_config,
            "DescribeEndpointConfig": self.describe_endpoint_config,
            "ListEndpointConfigs": self.list_endpoint_configs,
            "DeleteEndpointConfig": self.delete_endpoint_config,
        }

    def create_endpoint_config(self, request: dict[str, Any]) -> dict[str, Any]:
        for member, feature in _UNSUPPORTED.items():
            if request.get(member):
                raise ValidationError(f"{member}: {feature} is not supported by Sabio yet.")
        capture = request.get("DataCaptureConfig")
        if capture:
            require_s3(capture["DestinationS3Uri"], "DataCaptureConfig.DestinationS3Uri")
        if request.get("AsyncInferenceConfig"):
            check_async_config(request["AsyncInferenceConfig"])
        variants = [self._check_variant(v, i) for i, v in enumerate(request["ProductionVariants"])]
        shadows = [
            self._check_variant(v, i, "ShadowProductionVariants")
            for i, v in enumerate(request.get("ShadowProductionVariants") or [])
        ]
        if shadows:
            check_shadow_layout(variants, shadows)
        if request.get("AsyncInferenceConfig"):
            for variant in variants:
                model = self.catalog.require(MODEL, variant["ModelName"])
                if any(c.get("Mode") == "MultiModel" for c in containers_of(model.spec)):
                    raise ValidationError(
                        f"Model {variant['ModelName']} is a multi-model model (Mode MultiModel); "
                        "asynchronous inference does not support multi-model endpoints."
                    )
        names = [v["VariantName"].lower() for v in [*variants, *shadows]]
        if len(set(names)) != len(names):
            raise ValidationError("Variant names must be unique within an endpoint configuration.")
        total = sum(int(v.get("InitialInstanceCount") or 1) for v in [*variants, *shadows])
        if total > self.max_instances:
            raise ResourceLimitExceededError(
                f"The endpoint configuration asks for {total} instances; this Sabio server allows "
                f"at most {self.max_instances} per endpoint (SABIO_MAX_INSTANCES_PER_ENDPOINT)."
            )
        spec = {key: request[key] for key in _SPEC_MEMBERS if key in request}
        spec["ProductionVariants"] = variants
        if shadows:
            spec["ShadowProductionVariants"] = shadows
        resource = self.catalog.create(
            ENDPOINT_CONFIG, request["EndpointConfigName"], spec, tags=request.get("Tags")
        )
        return {"EndpointConfigArn": resource.arn}

    def _check_variant(
        self, variant: dict[str, Any], index: int, member: str = "ProductionVariants"
    ) -> dict[str, Any]:
        where = f"{member}.{index + 1}"
        model_name = variant.get("ModelName")
        if not model_name:
            raise ValidationError(f"{where}.ModelName is required.")
        model = self.catalog.require(MODEL, model_name)
        checked = dict(variant)
        checked.setdefault("InitialVariantWeight", 1.0)
        if variant.get("ServerlessConfig"):
            if any(c.get("Mode") == "MultiModel" for c in containers_of(model.spec)):
                raise ValidationError(
                    f"{where}: model {model_name} is a multi-model model (Mode MultiModel), "
                    "which serverless variants do not support; use an instance-based variant."
                )
            if variant.get("InstanceType") or variant.get("InitialInstanceCount"):
                raise ValidationError(
                    f"{where}: ServerlessConfig cannot be combined with InstanceType or "
                    "InitialInstanceCount."
                )
            _check_serverless(variant["ServerlessConfig"], where)
            return checked
        instance_type = variant.get("InstanceType")
        if not instance_type:
            raise ValidationError(
                f"{where}.InstanceType is required for an instance-based variant."
            )
        if instance_types.lookup(instance_type) is None:
            raise ValidationError(f"{where}.InstanceType '{instance_type}' is not a known type.")
        if not variant.get("InitialInstanceCount"):
            raise ValidationError(f"{where}.InitialInstanceCount is required.")
        return checked

    def describe_endpoint_config(self, request: dict[str, Any]) -> dict[str, Any]:
        resource = self.catalog.require(ENDPOINT_CONFIG, request["EndpointConfigName"])
        return {
            "EndpointConfigName": resource.name,
            "EndpointConfigArn": resource.arn,
            "CreationTime": resource.created_at,
            **resource.spec,
        }

    def list_endpoint_configs(self, request: dict[str, Any]) -> dict[str, Any]:
        return list_page(
            self.catalog.repository, ENDPOINT_CONFIG.key, request, "EndpointConfigs", _summary
        )

    def delete_endpoint_config(self, request: dict[str, Any]) -> dict[str, Any]:
        self.catalog.delete(ENDPOINT_CONFIG, request["EndpointConfigName"])
        return {}


def _check_serverless(config: dict[str, Any], where: str) -> None:
    """What the model's ranges (checked before) leave: whole gigabytes, and provisioned
    concurrency within the maximum."""
    memory = int(config["MemorySizeInMB"])
    if memory % 1024:
        raise ValidationError(
            f"{where}.ServerlessConfig.MemorySizeInMB: {memory} is not a valid memory size. "
            "Valid values are 1024, 2048, 3072, 4096, 5120 and 6144 MB."
        )
    provisioned = config.get("ProvisionedConcurrency")
    if provisioned is not None and int(provisioned) > int(config["MaxConcurrency"]):
        raise ValidationError(
            f"{where}.ServerlessConfig: ProvisionedConcurrency ({provisioned}) must be less "
            f"than or equal to MaxConcurrency ({config['MaxConcurrency']})."
        )


def _summary(resource: Resource) -> dict[str, Any]:
    return {
        "EndpointConfigName": resource.name,
        "EndpointConfigArn": resource.arn,
        "CreationTime": resource.created_at,
    }
