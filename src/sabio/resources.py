"""The kinds of SageMaker resource Sabio stores, with their ARN type and their wire noun."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sabio.arns import ArnFactory
from sabio.errors import already_exists, not_found
from sabio.store.entities import Resource
from sabio.store.repository import AlreadyExists, Repository


@dataclass(frozen=True)
class Kind:
    key: str
    arn_type: str
    noun: str


MODEL = Kind("model", "model", "model")
ENDPOINT_CONFIG = Kind("endpoint-config", "endpoint-config", "endpoint configuration")
ENDPOINT = Kind("endpoint", "endpoint", "endpoint")

TRAINING_JOB = Kind("training-job", "training-job", "training job")
PROCESSING_JOB = Kind("processing-job", "processing-job", "processing job")
TRANSFORM_JOB = Kind("transform-job", "transform-job", "transform job")

# SNS resources (notifications/): ARNs are SNS ARNs, built there, not SageMaker ones.
SNS_TOPIC = Kind("sns-topic", "topic", "topic")
SNS_SUBSCRIPTION = Kind("sns-subscription", "subscription", "subscription")

# Application Auto Scaling resources (autoscaling/): their ARNs are built there too.
SCALABLE_TARGET = Kind("scalable-target", "scalable-target", "scalable target")
SCALING_POLICY = Kind("scaling-policy", "scaling-policy", "scaling policy")
METRIC_ALARM = Kind("metric-alarm", "alarm", "alarm")

TAGGABLE: tuple[Kind, ...] = (
    MODEL,
    ENDPOINT_CONFIG,
    ENDPOINT,
    TRAINING_JOB,
    PROCESSING_JOB,
    TRANSFORM_JOB,
)
BY_ARN_TYPE = {kind.arn_type: kind for kind in TAGGABLE}


class Catalog:
    """Create, find and remove resources with SageMaker's errors for duplicates and misses."""

    def __init__(self, repository: Repository, arns: ArnFactory) -> None:
        self.repository = repository
        self.arns = arns

    def arn(self, kind: Kind, name: str) -> str:
        return self.arns.build(kind.arn_type, name)

    def create(
        self,
        kind: Kind,
        name: str,
        spec: dict[str, Any],
        *,
        tags: list[dict[str, str]] | None = None,
        status: str | None = None,
        state: dict[str, Any] | None = None,
    ) -> Resource:
        now = time.time()
        arn = self.arn(kind, name)
        resource = Resource(kind.key, name, arn, spec, now, now, status, state or {})
        try:
            return self.repository.create(resource, tags_to_dict(tags))
        except AlreadyExists:
            raise already_exists(kind.noun, arn) from None

    def require(self, kind: Kind, name: str) -> Resource:
        resource = self.repository.get(kind.key, name)
        if resource is None:
            raise not_found(kind.noun, self.arn(kind, name))
        return resource

    def delete(self, kind: Kind, name: str) -> None:
        if not self.repository.delete(kind.key, name):
            raise not_found(kind.noun, self.arn(kind, name))


def tags_to_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    return {tag["Key"]: tag.get("Value", "") for tag in tags or []}
