"""The transform job's model workers, and handing them out: the least busy healthy one with a
free slot (`MaxConcurrentTransforms` per instance).

A worker that exits is replaced in its slot (through `Replace`, which starts a new model worker
process), up to a budget per job, so one crash does not end the job but a model that keeps
crashing does. Requests wait for the replacement instead of failing."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

log = logging.getLogger("sabio.transform")


@dataclass
class Worker:
    name: str
    socket_path: str
    returncode: Callable[[], int | None]
    session: aiohttp.ClientSession | None = None
    busy: int = 0
    uses: int = 0
    healthy: bool = True

    def alive(self) -> bool:
        return self.returncode() is None

    def open(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=self.socket_path, limit=0),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


# Starts a new model worker in the given slot (0-based); runs in the pool's event loop.
Replace = Callable[[int], Awaitable[Worker]]


class NoWorkers(Exception):
    """Every model worker has exited and none can be replaced."""


class Pool:
    """Hands out workers: the least busy healthy one with a free slot, waiting when all are
    full or being replaced. Safe only within one event loop."""

    def __init__(
        self,
        workers: list[Worker],
        per_worker: int,
        replace: Replace | None = None,
        replacements: int = 0,
    ) -> None:
        self.workers = workers
        self.per_worker = per_worker
        self.replace = replace
        self.replacements_left = replacements
        self.replace_error: str | None = None
        self._replacing: set[asyncio.Task[None]] = set()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def capacity(self) -> int:
        return self.per_worker * len(self.workers)

    def _pick(self) -> Worker | None:
        best: Worker | None = None
        for worker in self.workers:
            free = worker.healthy and worker.busy < self.per_worker
            if free and (best is None or (worker.busy, worker.uses) < (best.busy, best.uses)):
                best = worker
        return best

    async def acquire(self) -> Worker:
        while True:
            if not self._replacing and not any(w.healthy for w in self.workers):
                raise NoWorkers
            worker = self._pick()
            if worker is not None:
                worker.busy += 1
                worker.uses += 1
                return worker
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass the free slot on
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    def release(self, worker: Worker) -> None:
        worker.busy -= 1
        self._wake()

    def mark_dead(self, worker: Worker) -> None:
        """Take an exited worker out of service and start its replacement, if any is left."""
        if not worker.healthy:
            return
        worker.healthy = False
        if worker in self.workers and self.replace is not None and self.replacements_left > 0:
            self.replacements_left -= 1
            task = asyncio.create_task(self._replace(self.workers.index(worker), worker))
            self._replacing.add(task)
            task.add_done_callback(self._replacing.discard)
        self._wake_all()

    async def _replace(self, slot: int, dead: Worker) -> None:
        assert self.replace is not None
        fresh: Worker | None = None
        try:
            fresh = await self.replace(slot)
        except asyncio.CancelledError:
            await dead.close()
            raise
        except Exception as exc:
            log.warning("replacing model worker %s failed: %s", dead.name, exc)
            self.replace_error = f"replacing {dead.name} failed: {exc}"
        await dead.close()
        if fresh is not None:
            fresh.open()
            self.workers[slot] = fresh
            log.info("model worker %s replaced", fresh.name)
        current = asyncio.current_task()
        if current is not None:
            self._replacing.discard(current)
        self._wake_all()  # waiters look again: at the new worker, or at none left

    async def close(self) -> None:
        """Cancel replacements in progress and close every worker's connections."""
        for task in list(self._replacing):
            task.cancel()
        await asyncio.gather(*self._replacing, return_exceptions=True)
        for worker in self.workers:
            await worker.close()

    def _wake_all(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
