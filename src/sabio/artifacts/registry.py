"""Artifact backends chosen by URI scheme, built on first use."""

from __future__ import annotations

from collections.abc import Callable

from sabio.artifacts.local import LocalArtifactStore
from sabio.artifacts.store import ArtifactStore
from sabio.artifacts.uri import ObjectUri, parse
from sabio.config import Settings
from sabio.errors import ValidationError


class ArtifactRegistry:
    """Maps a scheme (`s3`) to the store that serves it."""

    def __init__(self) -> None:
        self._factories: dict[str, Callable[[], ArtifactStore]] = {}
        self._stores: dict[str, ArtifactStore] = {}

    def register(self, scheme: str, factory: Callable[[], ArtifactStore]) -> None:
        self._factories[scheme] = factory

    def for_uri(self, uri: ObjectUri) -> ArtifactStore:
        store = self._stores.get(uri.scheme)
        if store is None:
            factory = self._factories.get(uri.scheme)
            if factory is None:
                known = ", ".join(f"{s}://" for s in sorted(self._factories))
                raise ValidationError(f"'{uri}' has an unsupported scheme; known schemes: {known}.")
            store = self._stores[uri.scheme] = factory()
        return store

    def resolve(self, uri: str) -> tuple[ArtifactStore, ObjectUri]:
        parsed = parse(uri)
        return self.for_uri(parsed), parsed


def from_settings(settings: Settings) -> ArtifactRegistry:
    """The registry a server uses: `s3://` served by the local store under the home."""
    registry = ArtifactRegistry()
    root = settings.resolved_artifact_root
    registry.register("s3", lambda: LocalArtifactStore(root))
    return registry
