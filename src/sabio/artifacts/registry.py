"""Artifact backends chosen by URI scheme, built on first use."""

from __future__ import annotations

import threading
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
        self._lock = threading.Lock()

    def register(self, scheme: str, factory: Callable[[], ArtifactStore]) -> None:
        self._factories[scheme] = factory

    def for_uri(self, uri: ObjectUri) -> ArtifactStore:
        return self._store(uri.scheme, str(uri))

    def for_scheme(self, scheme: str) -> ArtifactStore:
        return self._store(scheme, f"{scheme}://")

    def _store(self, scheme: str, uri: str) -> ArtifactStore:
        store = self._stores.get(scheme)
        if store is None:
            factory = self._factories.get(scheme)
            if factory is None:
                known = ", ".join(f"{s}://" for s in sorted(self._factories))
                raise ValidationError(f"'{uri}' has an unsupported scheme; known schemes: {known}.")
            with self._lock:
                store = self._stores.get(scheme)
                if store is None:
                    store = self._stores[scheme] = factory()
        return store

    def resolve(self, uri: str) -> tuple[ArtifactStore, ObjectUri]:
        parsed = parse(uri)
        return self.for_uri(parsed), parsed


def from_settings(settings: Settings) -> ArtifactRegistry:
    """The registry a server uses: `s3://` served by the S3-compatible store when
    `SABIO_S3_ENDPOINT_URL` names one, else by the local store under the home."""
    registry = ArtifactRegistry()
    if settings.s3_endpoint_url:
        from sabio.artifacts.s3 import S3ArtifactStore, S3Connection

        connection = S3Connection(
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region or settings.region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
            addressing_style=settings.s3_addressing_style,
        )
        registry.register("s3", lambda: S3ArtifactStore(connection))
        return registry
    root = settings.resolved_artifact_root
    registry.register("s3", lambda: LocalArtifactStore(root))
    return registry
