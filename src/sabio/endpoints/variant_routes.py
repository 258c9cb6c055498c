"""What an endpoint's deployed variants look like from outside: the variant summaries
DescribeEndpoint shows, and the route that invocations follow to the running instances."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from sabio.endpoints.deployment import RunningInstance, VariantPlan
from sabio.endpoints.service import IN_SERVICE
from sabio.endpoints.shadow_config import all_variants
from sabio.serving.capture import CapturePolicy
from sabio.serving.router import Route, Variant
from sabio.store.entities import Resource


def variant_state(endpoint: Resource, plans: Sequence[VariantPlan]) -> dict[str, Any]:
    """The variant summaries DescribeEndpoint shows, shadow variants apart."""
    shadows = [p for p in plans if p.shadow]
    production = [p for p in plans if not p.shadow]
    state = {"ProductionVariants": _summaries(endpoint, production)}
    if shadows:
        state["ShadowProductionVariants"] = _summaries(endpoint, shadows)
    return state


def _summaries(endpoint: Resource, plans: list[VariantPlan]) -> list[dict[str, Any]]:
    now = time.time()
    variants = {v["VariantName"]: v for v in all_variants(endpoint.spec["Config"])}
    summaries = []
    for plan in plans:
        summary: dict[str, Any] = {
            "VariantName": plan.name,
            "DeployedImages": [
                {
                    "SpecifiedImage": plan.image,
                    "ResolvedImage": plan.image,
                    "ResolutionTime": now,
                }
            ],
            "CurrentWeight": plan.weight,
            "DesiredWeight": plan.weight,
        }
        serverless = variants[plan.name].get("ServerlessConfig")
        if serverless:
            summary["CurrentServerlessConfig"] = serverless
            summary["DesiredServerlessConfig"] = serverless
        else:
            count = plan.instance_count
            if plan.multi_model is not None:  # its workers are per loaded model
                count = int(variants[plan.name].get("InitialInstanceCount") or 1)
            summary["CurrentInstanceCount"] = count
            summary["DesiredInstanceCount"] = count
        summaries.append(summary)
    return summaries


def build_route(
    name: str,
    plans: Sequence[VariantPlan],
    running: Sequence[RunningInstance],
    config: dict[str, Any],
    log_group: str,
) -> tuple[Route, list[Variant]]:
    """The InService route over the running instances (production and shadow variants apart),
    and every variant in plan order (serverless variants gain instances as they scale)."""
    variants = [
        Variant(
            plan.name,
            plan.weight,
            [r.endpoint for r in sorted(running, key=lambda r: r.index) if r.variant == plan.name],
            timeout=_timeout(plan.invocation_timeout),
        )
        for plan in plans
    ]
    capture = CapturePolicy.from_config(config.get("DataCaptureConfig"))
    paired = list(zip(variants, plans, strict=True))
    production = [v for v, plan in paired if not plan.shadow]
    shadows = [v for v, plan in paired if plan.shadow]
    route = Route(
        name, IN_SERVICE, production, log_group=log_group, capture=capture, shadows=shadows
    )
    return route, variants


def _timeout(seconds: float | None) -> aiohttp.ClientTimeout | None:
    """A variant's own invocation timeout (SAGEMAKER_MODEL_SERVER_TIMEOUT), if it has one."""
    return aiohttp.ClientTimeout(total=seconds) if seconds else None
