"""Building and caching the virtual environments user code runs in.

An environment is a uv venv whose own packages sit above the server's (a `.pth` file adds the
server's site-packages after its own), so a model pays only for what the server lacks. Each one
lives in `<root>/<key>`, where the key hashes the spec and the server interpreter; it is built in
a temporary directory and renamed into place, so a directory that exists is complete.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sabio.environments.indexes import IndexSettings
from sabio.environments.layout import (
    METADATA_FILE,
    disk_usage,
    fingerprint,
    layer_over_server,
    read_metadata,
)
from sabio.environments.requirements import parse_requirements_file
from sabio.environments.server import satisfied_by_server
from sabio.environments.spec import EnvironmentBuildError, EnvironmentSpec, parse_line
from sabio.environments.uv import UvRunner

__all__ = ["Environment", "EnvironmentBuildError", "EnvironmentBuilder", "EnvironmentSpec"]

logger = logging.getLogger(__name__)

SERVER_KEY = "server"
REQUIREMENTS_FILE = "sabio-requirements.txt"
_LAYOUT_VERSION = 1  # bump when the layout of a built environment changes
_TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class Environment:
    """An interpreter to run user code with, and where it came from."""

    python: Path
    key: str
    path: Path | None

    @property
    def is_server(self) -> bool:
        return self.path is None


class EnvironmentBuilder:
    """Turns specs into environments under `root`; safe across threads and processes."""

    def __init__(
        self,
        root: Path,
        *,
        uv_cache_dir: Path | None = None,
        find_links: Sequence[str] = (),
        index_url: str | None = None,
        extra_index_urls: Sequence[str] = (),
        index_strategy: str | None = None,
        timeout_seconds: float = 600.0,
        uv_bin: Path | None = None,
    ) -> None:
        self.root = root.resolve()
        # Next to the environments by default: uv hardlinks from its cache within one filesystem.
        self.uv_cache_dir = (uv_cache_dir or self.root.parent / "cache" / "uv").resolve()
        self.indexes = IndexSettings.usable(
            index_url=index_url,
            extra_index_urls=extra_index_urls,
            find_links=find_links,
            index_strategy=index_strategy,
        )
        self.timeout_seconds = timeout_seconds
        self._uv = UvRunner(uv_bin, cache_dir=self.uv_cache_dir, cwd=self.root)

    @classmethod
    def from_pip_environment(
        cls,
        root: Path,
        environ: Mapping[str, str],
        *,
        uv_cache_dir: Path | None = None,
        timeout_seconds: float = 600.0,
    ) -> EnvironmentBuilder:
        """A builder honouring PIP_INDEX_URL/PIP_EXTRA_INDEX_URL/PIP_FIND_LINKS from `environ`."""
        indexes = IndexSettings.from_pip_environment(environ)
        return cls(
            root,
            uv_cache_dir=uv_cache_dir,
            find_links=indexes.find_links,
            index_url=indexes.index_url,
            extra_index_urls=indexes.extra_index_urls,
            index_strategy=indexes.index_strategy,
            timeout_seconds=timeout_seconds,
        )

    def spec_from_requirements_file(self, path: Path) -> EnvironmentSpec:
        return parse_requirements_file(path)

    def satisfied_by_server(self, spec: EnvironmentSpec) -> bool:
        return satisfied_by_server(spec)

    def server_environment(self) -> Environment:
        return Environment(python=Path(sys.executable), key=SERVER_KEY, path=None)

    def key_for(self, spec: EnvironmentSpec) -> str:
        """Content hash of the spec, the files it installs from and the server interpreter."""
        payload = {
            "layout": _LAYOUT_VERSION,
            "spec": spec.to_json(),
            "local_files": self._local_fingerprints(spec),
            "python": sys.version,
            "implementation": sys.implementation.name,
            "prefix": sys.prefix,
        }
        encoded = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(encoded).hexdigest()[:32]

    def environment_for(self, key: str) -> Environment:
        path = self.root / key
        return Environment(python=path / "bin" / "python", key=key, path=path)

    def cached(self, spec: EnvironmentSpec) -> Environment | None:
        """The built environment for `spec`, without building; None if there is none yet."""
        environment = self.environment_for(self.key_for(spec))
        assert environment.path is not None
        return environment if environment.path.is_dir() else None

    def ensure(self, spec: EnvironmentSpec) -> Environment:
        """The environment to run `spec` in, building it (blocking, minutes at worst) if needed."""
        if self.satisfied_by_server(spec):
            return self.server_environment()
        # What the server already provides is visible through the layering; install the rest.
        spec = dataclasses.replace(
            spec,
            requirements=tuple(
                line
                for line in spec.requirements
                if not self.satisfied_by_server(EnvironmentSpec(requirements=(line,)))
            ),
        )
        key = self.key_for(spec)
        environment = self.environment_for(key)
        assert environment.path is not None
        if environment.path.is_dir():
            return environment
        with self._lock(key):
            if not environment.path.is_dir():
                self._build(spec, key, environment.path)
        return environment

    def describe_cache(self) -> list[dict[str, Any]]:
        """The cached environments: key, requirements and size on disk."""
        if not self.root.is_dir():
            return []
        described: list[dict[str, Any]] = []
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(".") or not path.is_dir():
                continue
            metadata = read_metadata(path)
            spec = EnvironmentSpec.from_json(metadata.get("spec") or {})
            described.append(
                {
                    "key": path.name,
                    "path": str(path),
                    "requirements": list(spec.requirements),
                    "created_at": metadata.get("created_at"),
                    "size_bytes": disk_usage(path),
                }
            )
        return described

    @contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        """One builder per key: flock conflicts across processes and across open() calls."""
        self.root.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.root / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # closing releases the lock

    def _build(self, spec: EnvironmentSpec, key: str, final: Path) -> None:
        # Left by a builder that died mid-build; we hold the key's lock, so nobody else uses them.
        for stale in self.root.glob(f"{_TMP_PREFIX}{key}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = self.root / f"{_TMP_PREFIX}{key}-{secrets.token_hex(4)}"
        logger.info("Building Python environment %s for %s", key, ", ".join(spec.requirements))
        deadline = time.monotonic() + self.timeout_seconds
        started = time.monotonic()
        try:
            self._uv.run(
                ["venv", "--no-project", "--relocatable", "--python", sys.executable, str(tmp)],
                deadline=deadline,
                action="create the virtual environment",
            )
            created = time.monotonic()
            layer_over_server(tmp)
            requirements = tmp / REQUIREMENTS_FILE
            requirements.write_text("".join(f"{line}\n" for line in spec.requirements))
            install_output = self._uv.run(
                [
                    "pip",
                    "install",
                    "--python",
                    str(tmp / "bin" / "python"),
                    "-r",
                    str(requirements),
                    *self.indexes.uv_arguments(spec),
                ],
                deadline=deadline,
                action=f"install the requirements ({', '.join(spec.requirements)})",
            )
            finished = time.monotonic()
            metadata = {
                "key": key,
                "spec": spec.to_json(),
                "python": sys.version,
                "server_prefix": sys.prefix,
                "created_at": datetime.now(UTC).isoformat(),
                "timings": {
                    "venv_seconds": round(created - started, 3),
                    "install_seconds": round(finished - created, 3),
                    "total_seconds": round(finished - started, 3),
                },
                "uv_output": install_output.splitlines()[-50:],
            }
            (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
            try:
                tmp.rename(final)
            except OSError:
                if not final.is_dir():
                    raise
                logger.info("Environment %s was built concurrently; discarding ours", key)
            else:
                logger.info("Built Python environment %s in %.1f s", key, finished - started)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _local_fingerprints(self, spec: EnvironmentSpec) -> dict[str, str]:
        """Digests of the local files a spec installs from, so changing a wheel rebuilds."""
        fingerprints: dict[str, str] = {}
        for line in spec.requirements:
            path = parse_line(line).local_path
            if path is None:
                continue
            if not path.is_absolute():
                raise EnvironmentBuildError(
                    f"Requirement {line!r} uses a relative path; specs need absolute paths."
                )
            if not path.exists():
                raise EnvironmentBuildError(f"Requirement {line!r}: {path} does not exist.")
            fingerprints[str(path)] = fingerprint(path)
        for location in spec.find_links:
            path = Path(location)
            if path.is_absolute() and path.is_dir():
                fingerprints[str(path)] = fingerprint(path)
        return fingerprints
