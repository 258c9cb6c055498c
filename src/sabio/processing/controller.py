"""The processing controller: `InProgress -> Completed | Failed | Stopped`, with outputs uploaded
at the end of the job or, for `Continuous` outputs, while it runs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from sabio.jobs.controller import COMPLETED, FAILED, STOPPED, JobController
from sabio.jobs.execution import JobExecutor, Plan
from sabio.jobs.runner import JobFailure
from sabio.processing.runner import ProcessingRunner
from sabio.resources import PROCESSING_JOB
from sabio.store.entities import Resource
from sabio.store.repository import Repository

_CONTINUOUS_INTERVAL = 2.0


class ProcessingController(JobController):
    kind = PROCESSING_JOB

    def __init__(
        self,
        repository: Repository,
        runner: ProcessingRunner,
        executor: JobExecutor,
        *,
        interval: float,
    ) -> None:
        super().__init__(repository, executor, interval=interval)
        self.runner = runner

    async def run_job(self, job: Resource, stop: asyncio.Event) -> None:
        plan: Plan | None = None
        uploader: asyncio.Task[None] | None = None
        try:
            plan = await asyncio.to_thread(self.runner.prepare, job)
            if stop.is_set():
                await self.finish(job, STOPPED)
                return
            start = time.time()
            await self.update_state(job.name, ProcessingStartTime=start)
            runtime = float(job.spec["StoppingCondition"]["MaxRuntimeInSeconds"])
            deadline = asyncio.get_running_loop().time() + runtime
            uploader = asyncio.create_task(self._continuous(job, plan))
            outcome = await self.executor.execute(plan, stop, deadline)
        except asyncio.CancelledError:
            if plan is not None:
                await self.executor.stop(plan)
            raise
        except JobFailure as exc:
            await self.finish(job, FAILED, FailureReason=str(exc)[:1024])
            return
        finally:
            if uploader is not None:
                uploader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await uploader
        fields: dict[str, Any] = {"ProcessingEndTime": time.time()}
        message = self.runner.exit_message(plan)
        if message:
            fields["ExitMessage"] = message
        if not outcome.failed or outcome.stopped or outcome.timed_out:
            await asyncio.to_thread(self.runner.upload_outputs, job, plan)
        if outcome.stopped:
            await self.finish(job, STOPPED, **fields)
        elif outcome.timed_out:
            await self.finish(
                job,
                FAILED,
                FailureReason=f"The job exceeded MaxRuntimeInSeconds ({runtime:g} s).",
                **fields,
            )
        elif outcome.failed:
            await self.finish(
                job, FAILED, FailureReason=self.runner.failure_reason(plan, outcome), **fields
            )
        else:
            await self.finish(job, COMPLETED, **fields)

    async def _continuous(self, job: Resource, plan: Plan) -> None:
        while True:
            await asyncio.sleep(_CONTINUOUS_INTERVAL)
            await asyncio.to_thread(self.runner.upload_outputs, job, plan, continuous_only=True)
