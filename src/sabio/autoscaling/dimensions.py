"""The scalable dimensions of a SageMaker endpoint variant, and what each means for a variant.

`sagemaker:variant:DesiredInstanceCount` scales a variant on instances: its
`InitialInstanceCount`, changed by `DesiredInstanceCount`, tracked on `InvocationsPerInstance`.
`sagemaker:variant:DesiredProvisionedConcurrency` scales a serverless variant's
`ProvisionedConcurrency`, changed by a `ServerlessUpdateConfig`, tracked on
`ServerlessProvisionedConcurrencyUtilization`, and never above the variant's `MaxConcurrency`.
Both changes go through UpdateEndpointWeightsAndCapacities, the call a user would make.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sabio.telemetry.endpoint_metrics import PC_UTILIZATION, PER_INSTANCE

INSTANCE_COUNT = "sagemaker:variant:DesiredInstanceCount"
PROVISIONED_CONCURRENCY = "sagemaker:variant:DesiredProvisionedConcurrency"


@dataclass(frozen=True)
class Dimension:
    name: str
    noun: str
    """How activities name the capacity: "instance count", "provisioned concurrency"."""
    predefined: str
    """The predefined metric type target tracking accepts for it."""
    metric: str
    statistic: str
    """The CloudWatch metric and statistic that predefined metric type reads."""

    @property
    def serverless(self) -> bool:
        return self.name == PROVISIONED_CONCURRENCY

    def fits(self, variant: dict[str, Any]) -> bool:
        """The variant (as its endpoint config gives it) has this capacity to scale."""
        config = variant.get("ServerlessConfig") or {}
        if not self.serverless:
            return not config
        return config.get("ProvisionedConcurrency") is not None

    def current(self, variant: dict[str, Any]) -> int:
        """The capacity the endpoint's config asks for now."""
        if self.serverless:
            return int((variant.get("ServerlessConfig") or {}).get("ProvisionedConcurrency") or 0)
        return int(variant.get("InitialInstanceCount") or 0)

    def served(self, summary: dict[str, Any]) -> int | None:
        """The capacity DescribeEndpoint reports as current for the variant."""
        if self.serverless:
            value = (summary.get("CurrentServerlessConfig") or {}).get("ProvisionedConcurrency")
        else:
            value = summary.get("CurrentInstanceCount")
        return None if value is None else int(value)

    def ceiling(self, variant: dict[str, Any]) -> int | None:
        """The most the variant can take whatever the target's MaxCapacity: a serverless
        variant's MaxConcurrency."""
        if not self.serverless:
            return None
        return int((variant.get("ServerlessConfig") or {}).get("MaxConcurrency") or 0)

    def desired(self, variant_name: str, capacity: int) -> dict[str, Any]:
        """The DesiredWeightsAndCapacities entry that sets the capacity."""
        if self.serverless:
            update = {"ProvisionedConcurrency": capacity}
            return {"VariantName": variant_name, "ServerlessUpdateConfig": update}
        return {"VariantName": variant_name, "DesiredInstanceCount": capacity}


DIMENSIONS: dict[str, Dimension] = {
    INSTANCE_COUNT: Dimension(
        INSTANCE_COUNT,
        "instance count",
        "SageMakerVariantInvocationsPerInstance",
        PER_INSTANCE,
        "Sum",
    ),
    PROVISIONED_CONCURRENCY: Dimension(
        PROVISIONED_CONCURRENCY,
        "provisioned concurrency",
        "SageMakerVariantProvisionedConcurrencyUtilization",
        PC_UTILIZATION,
        "Average",
    ),
}


def dimension(name: str | None) -> Dimension:
    """The dimension a target, policy or activity records (instance count when unrecorded)."""
    return DIMENSIONS.get(name or INSTANCE_COUNT, DIMENSIONS[INSTANCE_COUNT])
