"""The pre-warmed parents (`sabio.serving.prewarm`) every endpoint worker can fork from, one per
model environment (interpreter), shared by real-time instances and serverless cold starts.

A parent is started the first time its environment is used and kept until the server stops, so
the second endpoint of an environment, and every replacement, scale-out or blue/green instance,
starts by a fork instead of a fresh interpreter. The environments used most recently are
remembered in the environments directory, and at server start the parents of the few that are
still built on disk are started ahead of any request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from pathlib import Path

from sabio.compute.local import WorkUnit
from sabio.endpoints.deployment import (
    Deployer,
    Launch,
    RunningInstance,
    VariantPlan,
    WorkerProcess,
)
from sabio.serving.forked_workers import PrewarmParent

log = logging.getLogger("sabio.endpoints.prewarm")

_PARENT_START_TIMEOUT = 120.0
_REMEMBERED = 16
_RECENT_FILE = ".prewarm-recent.json"


class Prewarmer:
    """The pre-warmed parents, one per interpreter, started on first use and kept until the
    server stops."""

    def __init__(self, deployer: Deployer) -> None:
        self.deployer = deployer
        self.backend = deployer.backend
        self._parents: dict[Path, PrewarmParent] = {}
        self._locks: dict[Path, asyncio.Lock] = {}
        self._warming: dict[Path, asyncio.Task[PrewarmParent | None]] = {}
        self._recent_file = deployer.environments.root / _RECENT_FILE
        self._closed = False

    async def parent(self, python: Path) -> PrewarmParent | None:
        """A ready parent for `python`, started now if need be (up to two minutes), or None
        when none can run (workers then start afresh)."""
        self._remember(python)
        lock = self._locks.setdefault(python, asyncio.Lock())
        async with lock:
            parent = self._parents.get(python)
            if parent is not None and parent.alive:
                return parent
            if parent is not None:
                self._parents.pop(python, None)
                await parent.stop(0)
            parent = await self._start_parent(python)
            if parent is not None:
                self._parents[python] = parent
            return parent

    def ready(self, python: Path) -> PrewarmParent | None:
        """The parent for `python` if one is running and ready now; never waits."""
        parent = self._parents.get(python)
        return parent if parent is not None and parent.alive else None

    def warm(self, python: Path) -> None:
        """Start the parent for `python` in the background unless it runs or is starting."""
        task = self._warming.get(python)
        if self._closed or self.ready(python) is not None or (task is not None and not task.done()):
            return
        self._warming[python] = asyncio.create_task(
            self._warm(python), name=f"prewarm-{python.parent.parent.name}"
        )

    async def _warm(self, python: Path) -> PrewarmParent | None:
        try:
            return await self.parent(python)
        except Exception as exc:  # the workers of this environment then start afresh
            log.warning("could not pre-warm a parent for %s: %s", python, exc)
            return None

    async def start_instance(self, endpoint: str, plan: VariantPlan, index: int) -> RunningInstance:
        """Start one real-time instance (`Deployer.start_instance`) through `launcher`. The
        environment's parent is started first if it is not running, and the instance forks
        from it once it is ready (a fresh process only if it cannot start); after an instance
        that started afresh, a parent is started for the next ones."""
        launch = self.launcher(plan.python)
        self.warm(plan.python)
        try:
            return await self.deployer.start_instance(endpoint, plan, index, launch)
        finally:
            self.warm(plan.python)

    def launcher(self, python: Path) -> Launch:
        """How a worker of `python` starts: forked from the environment's parent when it is
        ready (or about to be), else afresh."""

        async def launch(unit: WorkUnit) -> WorkerProcess:
            self._remember(python)
            # A fork shares the parent's namespaces; a unit that asks for a sandbox starts
            # afresh, inside bubblewrap.
            parent = self.ready(python)
            if parent is None and unit.sandbox is None:
                parent = await self._starting(python)
            if parent is not None and unit.sandbox is None:
                try:
                    return await parent.launch(unit)
                except (OSError, RuntimeError) as exc:
                    log.warning("forking a worker for %s failed (%s); starting afresh", python, exc)
            return self.backend.start(unit)

        return launch

    async def _starting(self, python: Path) -> PrewarmParent | None:
        """The parent for `python` once ready, if it is starting now; None if it cannot start
        (its own start has a time limit). A parent imports what a fresh worker would, so a
        fork after it comes as soon as a fresh worker would be up, and the next instances of
        the environment fork at once."""
        task = self._warming.get(python)
        if task is None or task.done():
            return None
        return await asyncio.shield(task)  # the endpoint may go; the parent's start goes on

    def prewarm_recent(self, count: int) -> None:
        """Start, in the background, the parents of the `count` environments used most
        recently that are still built."""
        if count <= 0:
            return
        for python in [p for p in self._recent() if p.exists()][:count]:
            self.warm(python)

    async def close(self) -> None:
        self._closed = True
        for task in self._warming.values():
            task.cancel()
        await asyncio.gather(*self._warming.values(), return_exceptions=True)
        self._warming.clear()
        parents = list(self._parents.values())
        self._parents.clear()
        await asyncio.gather(*(p.stop(self.deployer.stop_grace) for p in parents))

    async def _start_parent(self, python: Path) -> PrewarmParent | None:
        key = hashlib.sha256(str(python).encode()).hexdigest()[:12]
        socket_dir = self.deployer.socket_dir
        socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        control = socket_dir / f"prewarm-{key}.sock"
        env = {**self.deployer.base_env, "PYTHONUNBUFFERED": "1"}
        argv = [str(python), "-m", "sabio.serving.prewarm", "--control", str(control)]
        logs = self.deployer.logs_dir / "prewarm" / f"{key}.log"
        unit = WorkUnit(argv, env, socket_dir, logs, cpus=1, use_cgroups=False)
        parent = PrewarmParent(self.backend.start(unit), control)
        try:
            await parent.wait_ready(_PARENT_START_TIMEOUT)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                log.warning("no pre-warmed parent for %s (%s); see %s", python, exc, logs)
            await parent.stop(0)
            if isinstance(exc, RuntimeError):
                return None
            raise
        log.info("pre-warmed parent for %s is ready", python)
        return parent

    # The environments used most recently, newest first, kept across restarts.

    def _recent(self) -> list[Path]:
        try:
            names = json.loads(self._recent_file.read_text())
        except (OSError, ValueError):
            return []
        if not isinstance(names, list):
            return []
        return [Path(n) for n in names if isinstance(n, str)]

    def _remember(self, python: Path) -> None:
        recent = self._recent()
        if recent[:1] == [python]:
            return
        names = [str(p) for p in [python, *(p for p in recent if p != python)][:_REMEMBERED]]
        with contextlib.suppress(OSError):
            self._recent_file.parent.mkdir(parents=True, exist_ok=True)
            scratch = self._recent_file.with_suffix(".tmp")
            scratch.write_text(json.dumps(names))
            scratch.replace(self._recent_file)
