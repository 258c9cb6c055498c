"""What a transform run reports: the outcome of each input object and of the run."""

from __future__ import annotations

from dataclasses import dataclass

from sabio.transform.options import Effective


@dataclass
class FileResult:
    source: str
    output: str
    records: int
    requests: int
    error: str | None = None


@dataclass
class RunResult:
    files: list[FileResult]
    effective: Effective | None
    stopped: bool = False
    fatal: str | None = None

    @property
    def failures(self) -> list[FileResult]:
        return [f for f in self.files if f.error is not None]
