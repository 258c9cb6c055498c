"""The training controller: runs each job through `Starting -> Downloading -> Training ->
Uploading -> Completed` (or `Failed`, `Stopped`, `MaxRuntimeExceeded`), and after a server
restart resumes jobs that checkpoint."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from sabio.jobs.controller import JobController
from sabio.jobs.execution import JobExecutor, Plan
from sabio.resources import TRAINING_JOB
from sabio.store.entities import Resource
from sabio.store.repository import Repository
from sabio.training import status
from sabio.training.runner import JobFailure, TrainingRunner

_CHECKPOINT_SYNC_SECONDS = 5.0
_FINAL_SECONDARY = {
    status.COMPLETED: (status.COMPLETED, "Training job completed"),
    status.FAILED: (status.FAILED, "Training job failed"),
    status.STOPPED: (status.STOPPED, "The job was stopped"),
}


class TrainingController(JobController):
    kind = TRAINING_JOB

    def __init__(
        self,
        repository: Repository,
        runner: TrainingRunner,
        executor: JobExecutor,
        *,
        interval: float,
    ) -> None:
        super().__init__(repository, executor, interval=interval)
        self.runner = runner

    def resumable(self, job: Resource) -> bool:
        return bool(job.spec.get("CheckpointConfig"))

    async def on_resume(self, job: Resource) -> None:
        await self.transition(job.name, status.RESTARTING, "Resuming from the last checkpoint")

    async def on_stop_requested(self, job: Resource) -> None:
        await self.transition(job.name, status.STOPPING, "Stopping the training job")

    def interrupted_reason(self, job: Resource) -> str:
        return (
            "InternalServerError: the Sabio server stopped while the job was running. Give the "
            "job a CheckpointConfig to have it resumed from its last checkpoint after a restart."
        )

    def final_state(self, state: dict[str, Any], final: str) -> dict[str, Any]:
        secondary, message = state.pop("_Final", None) or _FINAL_SECONDARY[final]
        state["SecondaryStatusTransitions"] = _transitions(state, secondary, message, last=True)
        state["SecondaryStatus"] = secondary
        return state

    async def run_job(self, job: Resource, stop: asyncio.Event) -> None:
        started = time.time()
        plan: Plan | None = None
        try:
            plan = await asyncio.to_thread(self.runner.prepare, job, self._progress(job.name))
            if stop.is_set():
                await self.finish(job, status.STOPPED)
                return
            training_start = time.time()
            await self.transition(
                job.name,
                status.TRAINING,
                "Training image download completed. Training in progress.",
                TrainingStartTime=training_start,
            )
            runtime = float(job.spec["StoppingCondition"]["MaxRuntimeInSeconds"])
            deadline = asyncio.get_running_loop().time() + runtime - (training_start - started)
            syncing = asyncio.create_task(self._sync_checkpoints(job, plan))
            try:
                outcome = await self.executor.execute(plan, stop, deadline)
            finally:
                syncing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await syncing
        except asyncio.CancelledError:
            # The server is shutting down: keep what the job saved so a restart can resume it.
            if plan is not None:
                await self.executor.stop(plan)
                await asyncio.to_thread(self.runner.sync_checkpoints, job, plan)
            raise
        except JobFailure as exc:
            await self.finish(job, status.FAILED, FailureReason=str(exc)[:1024])
            return
        end = time.time()
        timing: dict[str, Any] = {
            "TrainingEndTime": end,
            "TrainingTimeInSeconds": max(1, round(end - training_start)),
            "BillableTimeInSeconds": max(1, round(end - training_start)),
            "FinalMetricDataList": outcome.final_metrics,
        }
        (plan.instances[0].workspace.root.parent / "metrics.json").write_text(
            outcome.metric_series or "{}"
        )
        if outcome.stopped or outcome.timed_out or not outcome.failed:
            await self.transition(job.name, status.UPLOADING, "Uploading generated training model")
            model = await asyncio.to_thread(self.runner.upload, job, plan)
            timing["ModelArtifacts"] = {"S3ModelArtifacts": model}
        if outcome.timed_out:
            message = f"The job exceeded MaxRuntimeInSeconds ({runtime:g} s) and was stopped"
            await self.finish(
                job, status.STOPPED, _Final=(status.MAX_RUNTIME_EXCEEDED, message), **timing
            )
        elif outcome.stopped:
            await self.finish(job, status.STOPPED, **timing)
        elif outcome.failed:
            reason = self.runner.failure_reason(plan, outcome)
            await self.finish(job, status.FAILED, FailureReason=reason, **timing)
        else:
            await self.finish(job, status.COMPLETED, **timing)

    async def _sync_checkpoints(self, job: Resource, plan: Plan) -> None:
        """Copy new checkpoints to CheckpointConfig.S3Uri while the job runs."""
        if not job.spec.get("CheckpointConfig"):
            return
        while True:
            await asyncio.sleep(_CHECKPOINT_SYNC_SECONDS)
            await asyncio.to_thread(self.runner.sync_checkpoints, job, plan)

    def _progress(self, name: str) -> Any:
        loop = asyncio.get_running_loop()

        def report(secondary: str, message: str) -> None:
            asyncio.run_coroutine_threadsafe(
                self.transition(name, secondary, message), loop
            ).result()

        return report

    async def transition(self, name: str, secondary: str, message: str, **fields: Any) -> None:
        def change() -> None:
            current = self.repository.get(TRAINING_JOB.key, name)
            if current is None:
                return
            state = {**current.state, **fields}
            state["SecondaryStatusTransitions"] = _transitions(state, secondary, message)
            state["SecondaryStatus"] = secondary
            self.repository.update(TRAINING_JOB.key, name, state=state)

        await asyncio.to_thread(change)


def _transitions(
    state: dict[str, Any], secondary: str, message: str, last: bool = False
) -> list[dict[str, Any]]:
    now = time.time()
    transitions = [dict(t) for t in state.get("SecondaryStatusTransitions") or []]
    if transitions and "EndTime" not in transitions[-1]:
        transitions[-1]["EndTime"] = now
    entry: dict[str, Any] = {"Status": secondary, "StartTime": now, "StatusMessage": message}
    if last:
        entry["EndTime"] = now
    transitions.append(entry)
    return transitions
