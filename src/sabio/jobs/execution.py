"""Running a job's instances: one process per host (sandboxed at `/opt/ml` where bubblewrap
exists), their output followed into log streams and metric series, the runtime limit and stop
requests enforced. Shared by training and processing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sabio.compute.local import LocalBackend, LocalProcess, WorkUnit
from sabio.compute.sandbox import Sandbox
from sabio.jobs.workspace import CONTAINER_ROOT, Workspace
from sabio.telemetry.logs import LogStore
from sabio.telemetry.metrics import MetricExtractor


@dataclass
class Instance:
    """One host of a job: what it runs and where its output goes."""

    host: str
    workspace: Workspace
    opt_ml: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    stream: str
    process: LocalProcess | None = None
    log_offset: int = 0

    @property
    def log_file(self) -> Path:
        return self.workspace.root.parent / f"{self.host}.log"


@dataclass
class Plan:
    job: str
    log_group: str
    instances: list[Instance]
    cpus: int
    memory_bytes: int
    sandboxed: bool
    network: bool
    metric_definitions: list[dict[str, str]] = field(default_factory=list)
    environment: Path | None = None


@dataclass
class Outcome:
    exit_codes: dict[str, int]
    stopped: bool = False
    timed_out: bool = False
    final_metrics: list[dict[str, Any]] = field(default_factory=list)
    metric_series: str = ""
    first_failure: str | None = None

    @property
    def failed(self) -> bool:
        return any(code != 0 for code in self.exit_codes.values())


class JobExecutor:
    def __init__(self, backend: LocalBackend, logs: LogStore, stop_grace: float) -> None:
        self.backend = backend
        self.logs = logs
        self.stop_grace = stop_grace

    async def execute(self, plan: Plan, stop: asyncio.Event, deadline: float) -> Outcome:
        """Run every instance until all exit, one fails, a stop is asked for or time runs out."""
        extractor = MetricExtractor(plan.metric_definitions)
        hosts = {i.host: "127.0.0.1" for i in plan.instances}
        tails = []
        for instance in plan.instances:
            instance.log_file.unlink(missing_ok=True)
            instance.log_offset = 0
            sandbox = None
            if plan.sandboxed:
                sandbox = Sandbox(
                    binds={CONTAINER_ROOT: instance.workspace.root},
                    network=plan.network,
                    hosts=hosts,
                    hostname=instance.host,
                    visible_tmp=_interpreter_paths(plan.environment),
                )
            cwd = instance.cwd
            if plan.sandboxed:
                inside = instance.cwd.relative_to(instance.workspace.root).as_posix()
                cwd = Path(CONTAINER_ROOT, inside) if inside != "." else Path(CONTAINER_ROOT)
            unit = WorkUnit(
                instance.argv,
                instance.env,
                cwd,
                instance.log_file,
                plan.cpus,
                plan.memory_bytes,
                sandbox=sandbox,
            )
            instance.process = self.backend.start(unit)
            tails.append(asyncio.create_task(self._follow(plan, instance, extractor)))
        try:
            outcome = await self._wait(plan, stop, deadline)
        finally:
            for tail in tails:
                tail.cancel()
            await asyncio.gather(*tails, return_exceptions=True)
        for instance in plan.instances:
            self._drain(plan, instance, extractor)
        outcome.final_metrics = extractor.final()
        outcome.metric_series = extractor.to_json()
        return outcome

    async def stop(self, plan: Plan) -> None:
        processes = [i.process for i in plan.instances if i.process is not None]
        await asyncio.gather(*(p.stop(self.stop_grace) for p in processes))

    async def _wait(self, plan: Plan, stop: asyncio.Event, deadline: float) -> Outcome:
        loop = asyncio.get_running_loop()
        processes = {i.host: i.process for i in plan.instances if i.process is not None}

        def codes() -> dict[str, int]:
            return {host: int(p.returncode or 0) for host, p in processes.items()}

        while True:
            current = {host: p.returncode for host, p in processes.items()}
            failed = [host for host, code in current.items() if code not in (None, 0)]
            if all(code is not None for code in current.values()):
                return Outcome(codes(), first_failure=failed[0] if failed else None)
            if failed:
                # One instance failed: the others cannot finish the job without it.
                await self.stop(plan)
                return Outcome(codes(), first_failure=failed[0])
            if stop.is_set() or loop.time() > deadline:
                await self.stop(plan)
                return Outcome(codes(), stopped=stop.is_set(), timed_out=not stop.is_set())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)

    async def _follow(self, plan: Plan, instance: Instance, extractor: MetricExtractor) -> None:
        while True:
            self._read_new(plan, instance, extractor)
            await asyncio.sleep(0.1)

    def _drain(self, plan: Plan, instance: Instance, extractor: MetricExtractor) -> None:
        self._read_new(plan, instance, extractor, final=True)

    def _read_new(
        self, plan: Plan, instance: Instance, extractor: MetricExtractor, final: bool = False
    ) -> None:
        """Move complete lines written since the last read into the log stream and metrics."""
        try:
            with instance.log_file.open("rb") as handle:
                handle.seek(instance.log_offset)
                data = handle.read()
        except FileNotFoundError:
            return
        if not final:
            cut = data.rfind(b"\n") + 1
            data = data[:cut]
        if not data:
            return
        instance.log_offset += len(data)
        text = data.decode("utf-8", "replace")
        if not text.endswith("\n"):
            text += "\n"
        # The sink drops empty lines and cuts over-long ones, as CloudWatch does.
        with self.logs.stream_writer(plan.log_group, instance.stream) as sink:
            sink.write(text)
        now = time.time()
        for line in text.splitlines():
            extractor.feed(line, now)


def tail(path: Path, lines: int = 8) -> str:
    """The last lines a process printed, for a failure reason."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "none"
    return "\n".join(text[-lines:]) or "none"


def _interpreter_paths(environment: Path | None) -> tuple[Path, ...]:
    """The job's own environment (the server's is always visible in the sandbox)."""
    return (environment,) if environment is not None else ()


def free_hosts(count: int) -> list[str]:
    return [f"algo-{i + 1}" for i in range(count)]


def environment_path(python: Path, env: Mapping[str, str]) -> str:
    """`python` on a job's command line means the job's environment, as in its image."""
    import os

    return os.pathsep.join(p for p in (str(python.parent), env.get("PATH")) if p)
