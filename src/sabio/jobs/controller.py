"""What the training and processing controllers share: one asyncio task per `InProgress` job,
stop requests, and after a server restart the choice between resuming a job and failing it."""

from __future__ import annotations

import abc
import asyncio
import logging
import uuid
from typing import Any

from sabio.jobs.execution import JobExecutor
from sabio.reconcile import ReconcileLoop
from sabio.resources import Kind
from sabio.store.entities import Resource
from sabio.store.repository import Repository

log = logging.getLogger("sabio.jobs")

IN_PROGRESS = "InProgress"
COMPLETED = "Completed"
FAILED = "Failed"
STOPPING = "Stopping"
STOPPED = "Stopped"


class JobController(ReconcileLoop):
    kind: Kind

    def __init__(self, repository: Repository, executor: JobExecutor, *, interval: float) -> None:
        super().__init__(interval)
        self.repository = repository
        self.executor = executor
        self.run_id = uuid.uuid4().hex
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stops: dict[str, asyncio.Event] = {}

    @abc.abstractmethod
    async def run_job(self, job: Resource, stop: asyncio.Event) -> None:
        """Run one job to its end, recording its final status."""

    def resumable(self, job: Resource) -> bool:
        """Whether a job cut off by a server restart can start again (it checkpoints)."""
        return False

    async def on_resume(self, job: Resource) -> None:
        """Called before a cut-off job starts again."""

    async def on_stop_requested(self, job: Resource) -> None:
        """Called once when StopXJob reaches a running job."""

    def interrupted_reason(self, job: Resource) -> str:
        return (
            f"InternalServerError: the Sabio server stopped while the {self.kind.noun} was "
            "running, and it cannot be resumed."
        )

    async def stop(self) -> None:
        """Stop running jobs' processes; they stay InProgress, so a restart resumes or fails
        them."""
        await self.stop_loop()
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def reconcile(self) -> None:
        # Jobs run in their own tasks; a pass only starts new jobs and passes on stop
        # requests, both of which arrive with a notify.
        if not self.must_read():
            return
        jobs = await asyncio.to_thread(self.repository.all, self.kind.key, (IN_PROGRESS, STOPPING))
        for job in jobs:
            key = job.name.lower()
            task = self._tasks.get(key)
            if task is not None and not task.done():
                if job.status == STOPPING and not self._stops[key].is_set():
                    self._stops[key].set()
                    await self.on_stop_requested(job)
                continue
            self._tasks.pop(key, None)
            if job.status == STOPPING:
                await self.finish(job, STOPPED)
                continue
            owner = job.state.get("Run")
            if owner and owner != self.run_id:
                if not self.resumable(job):
                    await self.finish(job, FAILED, FailureReason=self.interrupted_reason(job))
                    continue
                await self.on_resume(job)
            self._stops[key] = asyncio.Event()
            self._tasks[key] = self.notify_when_done(
                asyncio.create_task(self._guarded(job), name=f"{self.kind.key}-{key}")
            )

    async def _guarded(self, job: Resource) -> None:
        await self.update_state(job.name, Run=self.run_id)
        try:
            await self.run_job(job, self._stops[job.name.lower()])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("%s %s failed inside Sabio", self.kind.noun, job.name)
            await self.finish(
                job,
                FAILED,
                FailureReason=f"InternalServerError: {type(exc).__name__}: {exc}"[:1024],
            )

    # Store updates

    async def update_state(self, name: str, **fields: Any) -> None:
        def change() -> None:
            current = self.repository.get(self.kind.key, name)
            if current is not None:
                self.repository.update(self.kind.key, name, state={**current.state, **fields})

        await asyncio.to_thread(change)

    def final_state(self, state: dict[str, Any], final: str) -> dict[str, Any]:
        """The state recorded with a final status; subclasses add their own fields."""
        return state

    async def finish(self, job: Resource, final: str, **fields: Any) -> None:
        def change() -> None:
            current = self.repository.get(self.kind.key, job.name)
            if current is None:
                return
            state = self.final_state({**current.state, **fields}, final)
            state.pop("Run", None)
            self.repository.update(
                self.kind.key,
                job.name,
                status=final,
                state=state,
                expect_status=(IN_PROGRESS, STOPPING),
            )

        await asyncio.to_thread(change)
        log.info("%s %s: %s", self.kind.noun, job.name, final)
