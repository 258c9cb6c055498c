"""What the job services share: their dependencies, recording a new job, and stopping one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sabio.errors import ValidationError
from sabio.jobs.controller import IN_PROGRESS, STOPPING
from sabio.resources import Catalog, Kind
from sabio.store.entities import Resource


class JobService:
    kind: Kind

    def __init__(
        self,
        catalog: Catalog,
        notify: Callable[[], None],
        *,
        max_instances: int,
        gpus_available: int = 0,
    ) -> None:
        self.catalog = catalog
        self.notify = notify
        self.max_instances = max_instances
        self.gpus_available = gpus_available

    def record(
        self, name: str, spec: dict[str, Any], tags: Any, state: dict[str, Any] | None = None
    ) -> Resource:
        """Store the job as InProgress and wake its controller."""
        resource = self.catalog.create(
            self.kind, name, spec, tags=tags, status=IN_PROGRESS, state=state
        )
        self.notify()
        return resource

    def stop(self, name: str) -> dict[str, Any]:
        """Mark a running job Stopping; its controller stops the processes."""
        resource = self.catalog.require(self.kind, name)
        if resource.status != IN_PROGRESS:
            raise ValidationError(
                f"The {self.kind.noun} {name} is {resource.status} and cannot be stopped."
            )
        self.catalog.repository.update(
            self.kind.key, name, status=STOPPING, expect_status=(IN_PROGRESS,)
        )
        self.notify()
        return {}
