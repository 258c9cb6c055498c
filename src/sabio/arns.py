"""SageMaker ARNs: `arn:aws:sagemaker:<region>:<account>:<resource-type>/<name>`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArnFactory:
    region: str
    account_id: str

    def build(self, resource_type: str, name: str) -> str:
        # SageMaker lowercases resource names in ARNs.
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:{resource_type}/{name.lower()}"

    def log_group(self, group: str) -> str:
        return f"arn:aws:logs:{self.region}:{self.account_id}:log-group:{group}"


def parse(arn: str) -> tuple[str, str] | None:
    """`(resource_type, name)` of a SageMaker ARN, or None if it is not one."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sagemaker":
        return None
    resource_type, sep, name = parts[5].partition("/")
    if not sep or not name:
        return None
    return resource_type, name
