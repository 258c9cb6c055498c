"""What a job runner needs, whatever the job: where jobs live, the artifact store, and the
environment an image (plus a `requirements.txt`) stands for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sabio.artifacts.registry import ArtifactRegistry
from sabio.environments.builder import EnvironmentBuilder, EnvironmentBuildError, EnvironmentSpec


class JobFailure(Exception):
    """Why a job failed, in words a user can act on (becomes FailureReason)."""


@dataclass
class JobRunner:
    home: Path
    artifacts: ArtifactRegistry
    environments: EnvironmentBuilder
    base_env: Mapping[str, str] = field(default_factory=dict)
    region: str = "us-east-1"

    def environment(self, base: tuple[str, ...], requirements: Path | None = None) -> Path:
        """The interpreter for an image's packages plus an optional requirements file."""
        try:
            spec = EnvironmentSpec(requirements=base)
            if requirements is not None and requirements.is_file():
                spec = spec.combined_with(
                    self.environments.spec_from_requirements_file(requirements)
                )
            return self.environments.ensure(spec).python
        except EnvironmentBuildError as exc:
            raise JobFailure(f"Building the job's environment failed: {exc.message}") from None
