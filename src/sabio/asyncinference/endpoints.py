"""Which endpoints are asynchronous, and how: read from the endpoints' own copies of their
configs in the metadata store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sabio.resources import ENDPOINT
from sabio.store.entities import Resource
from sabio.store.repository import Repository

# SageMaker "chooses an optimal value" when MaxConcurrentInvocationsPerInstance is not given.
DEFAULT_CONCURRENCY = 4
SERVING = ("InService", "Updating")
DELETING = "Deleting"


@dataclass(frozen=True)
class AsyncEndpoint:
    name: str
    status: str
    config: dict[str, Any]
    """The endpoint's AsyncInferenceConfig."""

    @property
    def output(self) -> dict[str, Any]:
        output: dict[str, Any] = self.config.get("OutputConfig") or {}
        return output

    @property
    def notifications(self) -> dict[str, Any]:
        config: dict[str, Any] = self.output.get("NotificationConfig") or {}
        return config

    @property
    def concurrency_per_instance(self) -> int:
        client = self.config.get("ClientConfig") or {}
        return int(client.get("MaxConcurrentInvocationsPerInstance") or DEFAULT_CONCURRENCY)


def async_config(resource: Resource) -> dict[str, Any] | None:
    config: dict[str, Any] | None = resource.spec.get("Config", {}).get("AsyncInferenceConfig")
    return config or None


class AsyncEndpoints:
    """A cache of the asynchronous endpoints, refreshed by the dispatcher; `lookup` reads the
    store afresh for the one endpoint a request names."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self._known: dict[str, AsyncEndpoint] = {}

    def refresh(self) -> dict[str, AsyncEndpoint]:
        """Blocking: every endpoint with an AsyncInferenceConfig, by lower-cased name."""
        known = {}
        for resource in self.repository.all(ENDPOINT.key):
            entry = _entry(resource)
            if entry is not None:
                known[resource.name.lower()] = entry
        self._known = known
        return known

    def lookup(self, name: str) -> AsyncEndpoint | Resource | None:
        """The serving asynchronous endpoint from the cache (at most a refresh old); failing
        that (blocking) the endpoint's record, read afresh, or None when there is none."""
        cached = self._known.get(name.lower())
        if cached is not None and cached.status in SERVING:
            return cached
        resource = self.repository.get(ENDPOINT.key, name)
        if resource is None:
            return None
        return _entry(resource) or resource

    def is_async(self, name: str) -> bool:
        """From the cache: cheap enough for the real-time invocation path."""
        return name.lower() in self._known

    def cached(self) -> dict[str, AsyncEndpoint]:
        return self._known

    def present(self) -> list[str]:
        """The cached endpoints that are not being deleted: queued requests of any other
        endpoint are failed."""
        return [key for key, entry in self._known.items() if entry.status != DELETING]


def _entry(resource: Resource) -> AsyncEndpoint | None:
    config = async_config(resource)
    if config is None:
        return None
    return AsyncEndpoint(resource.name, resource.status or "", config)
