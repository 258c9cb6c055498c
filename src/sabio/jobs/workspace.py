"""The per-instance `/opt/ml` tree of a job, on the host.

`<home>/jobs/<kind>/<job>/<host>/` holds exactly what a SageMaker container sees under
`/opt/ml`; with bubblewrap it is bound there, otherwise the job's variables point at it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONTAINER_ROOT = "/opt/ml"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "input" / "config"

    @property
    def data(self) -> Path:
        return self.root / "input" / "data"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def output_data(self) -> Path:
        return self.root / "output" / "data"

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def code(self) -> Path:
        return self.root / "code"

    def create(self) -> Workspace:
        for path in (
            self.config,
            self.data,
            self.model,
            self.output_data,
            self.root / "output" / "intermediate",
            self.checkpoints,
            self.code,
        ):
            path.mkdir(parents=True, exist_ok=True)
        return self

    def write_json(self, name: str, payload: Any) -> None:
        target = self.config / name
        partial = target.with_suffix(".partial")
        partial.write_text(json.dumps(payload, indent=1, sort_keys=True))
        partial.replace(target)

    def read_failure(self, limit: int = 1024) -> str:
        try:
            return self.failure.read_text(errors="replace").strip()[:limit]
        except OSError:
            return ""

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def job_root(home: Path, kind: str, job: str) -> Path:
    return home / "jobs" / kind / job.lower()
