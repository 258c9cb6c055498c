"""What SageMaker allows of `ShadowProductionVariants`, and reading them back from a config.

A config with shadow variants has exactly one production variant and one shadow variant, both
on instances. The shadow's weight relative to the production variant's is the fraction of
traffic copied to it (see `sabio.serving.shadow`).
"""

from __future__ import annotations

from typing import Any

from sabio.errors import ValidationError


def check_shadow_layout(variants: list[dict[str, Any]], shadows: list[dict[str, Any]]) -> None:
    if len(variants) != 1 or len(shadows) != 1:
        raise ValidationError(
            "An endpoint configuration with ShadowProductionVariants must have exactly one "
            f"production variant and one shadow variant; it has {len(variants)} production "
            f"and {len(shadows)} shadow variant(s)."
        )
    for variant in (*variants, *shadows):
        if variant.get("ServerlessConfig"):
            raise ValidationError(
                f"Variant {variant['VariantName']}: shadow testing is not supported with "
                "serverless variants; use instance-based variants."
            )


def all_variants(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The production variants, then the shadow variants, of a recorded config."""
    return [*config["ProductionVariants"], *(config.get("ShadowProductionVariants") or [])]


def shadow_names(config: dict[str, Any]) -> set[str]:
    return {v["VariantName"] for v in config.get("ShadowProductionVariants") or []}
