"""Copying a transform job's worker output into CloudWatch-style log streams, one per instance
(`<job>/algo-<n>-<epoch>` in `/aws/sagemaker/TransformJobs`), as lines arrive."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sabio.endpoints.deployment import log_path
from sabio.telemetry.logs import LogStore

LOG_GROUP = "/aws/sagemaker/TransformJobs"
VARIANT = "algo"  # workers are algo-1 ... algo-N, like job instances
_LOG_INTERVAL = 0.5


class LogTail:
    """Copies the workers' output files into their log streams as lines arrive."""

    def __init__(self, logs: LogStore, logs_dir: Path, job: str, epoch: int) -> None:
        self.logs = logs
        self.logs_dir = logs_dir
        self.job = job
        self.epoch = epoch
        self.offsets: dict[int, int] = {}

    async def follow(self, count: int) -> None:
        while True:
            await asyncio.sleep(_LOG_INTERVAL)
            await asyncio.to_thread(self.drain, count, False)

    def drain(self, count: int, final: bool = True) -> None:
        for index in range(count):
            path = log_path(self.logs_dir, self.job, VARIANT, index)
            try:
                with path.open("rb") as handle:
                    handle.seek(self.offsets.get(index, 0))
                    data = handle.read()
            except FileNotFoundError:
                continue
            if not final:
                data = data[: data.rfind(b"\n") + 1]
            if not data:
                continue
            self.offsets[index] = self.offsets.get(index, 0) + len(data)
            stream = f"{self.job}/algo-{index + 1}-{self.epoch}"
            with self.logs.stream_writer(LOG_GROUP, stream) as sink:
                sink.write(data.decode("utf-8", "replace"))
