"""Bringing a model's data to local disk: `model.tar.gz` fetched from the artifact store and
extracted once into a cache keyed by the object's identity, so restarts and new instances
reuse it."""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
from pathlib import Path

from sabio.artifacts.markers import without_folder_markers
from sabio.artifacts.registry import ArtifactRegistry


class ModelDataError(Exception):
    """The model data could not be fetched or unpacked; the message says why."""


class ModelDataCache:
    def __init__(self, root: Path, artifacts: ArtifactRegistry) -> None:
        self.root = root
        self.artifacts = artifacts

    def empty_dir(self) -> Path:
        path = self.root / "empty"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def archive(self, uri: str) -> Path:
        """Extract a `.tar.gz` object and return the directory holding its contents."""
        store, parsed = self.artifacts.resolve(uri)
        info = store.stat(parsed)
        if info is None:
            raise ModelDataError(f"Failed to download model data from {uri}: no such object.")
        key = hashlib.sha256(f"{parsed}|{info.size}|{info.modified}".encode()).hexdigest()[:24]
        target = self.root / key
        if target.is_dir():
            return target
        self.root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".partial-", dir=self.root))
        try:
            archive = work / "model.tar.gz"
            store.download_file(parsed, archive)
            contents = work / "contents"
            contents.mkdir()
            try:
                with tarfile.open(archive, "r:*") as tar:
                    tar.extractall(contents, filter="data")
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise ModelDataError(
                    f"Model data at {uri} is not a valid tar.gz archive: {exc}"
                ) from None
            self._publish(contents, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return target

    def prefix(self, uri: str) -> Path:
        """Copy every object under an S3 prefix (uncompressed model data)."""
        store, parsed = self.artifacts.resolve(uri)
        objects = list(without_folder_markers(store.list(parsed)))
        if not objects:
            raise ModelDataError(f"Failed to download model data from {uri}: no objects there.")
        identity = "|".join(f"{o.uri.key}:{o.size}:{o.modified}" for o in objects)
        target = self.root / hashlib.sha256(identity.encode()).hexdigest()[:24]
        if target.is_dir():
            return target
        self.root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".partial-", dir=self.root))
        try:
            base = parsed.key if parsed.key.endswith("/") or not parsed.key else parsed.key + "/"
            for info in objects:
                relative = info.uri.key[len(base) :] if info.uri.key.startswith(base) else None
                if not relative:
                    relative = info.uri.key.rsplit("/", 1)[-1]
                store.download_file(info.uri, work / relative)
            self._publish(work, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return target

    @staticmethod
    def _publish(source: Path, target: Path) -> None:
        try:
            source.rename(target)
        except OSError:
            if not target.is_dir():
                raise
