"""The transform controller: runs each job `InProgress -> Completed | Failed | Stopped`.

A job's task lists the input objects and prepares the model as an endpoint variant would be
prepared (`Deployer.plan`: model data, code directory, environment), starts `InstanceCount`
model workers with the batch variables, hands the data to `TransformRun` in a thread, then
stops the workers and records the outcome. The workers' output goes to
`/aws/sagemaker/TransformJobs`, one stream per instance, and a `data-log` stream says what
happened to each object. A model worker that exits is replaced. A job cut off by a server
restart runs again, keeping the objects whose whole output was written before (see
`progress.py`); outputs are only ever written whole, so nothing half-done is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import shutil
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sabio import instance_types
from sabio.artifacts.registry import ArtifactRegistry
from sabio.artifacts.store import ArtifactStore
from sabio.endpoints.deployment import (
    Deployer,
    DeploymentError,
    RunningInstance,
    VariantPlan,
    log_path,
)
from sabio.errors import SabioError
from sabio.jobs.controller import COMPLETED, FAILED, STOPPED, JobController
from sabio.jobs.execution import JobExecutor
from sabio.models.service import containers_of
from sabio.resources import TRANSFORM_JOB
from sabio.store.entities import Resource
from sabio.store.repository import Repository
from sabio.telemetry.logs import LineSink, LogStore
from sabio.transform.capture import InferenceIds, write_manifests
from sabio.transform.inputs import InputError, InputObject, list_inputs
from sabio.transform.options import options_of
from sabio.transform.pool import Worker
from sabio.transform.progress import Progress
from sabio.transform.records import MULTI_RECORD, NONE, SINGLE_RECORD
from sabio.transform.results import RunResult
from sabio.transform.runner import TransformRun
from sabio.transform.service import MODEL_SNAPSHOT
from sabio.transform.worker_logs import LOG_GROUP, VARIANT, LogTail

log = logging.getLogger("sabio.transform")

PROGRESS = "Progress"  # the objects already transformed, for a run after a restart
_REPLACEMENTS_PER_INSTANCE = 4  # model workers started in place of ones that exited
_STRATEGY_VARIABLE = {SINGLE_RECORD: "SINGLE_RECORD", MULTI_RECORD: "MULTI_RECORD"}
_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_MAX_THREADS",
)


@dataclass
class _Prepared:
    store: ArtifactStore
    inputs: list[InputObject]
    plan: VariantPlan


class TransformController(JobController):
    kind = TRANSFORM_JOB

    def __init__(
        self,
        repository: Repository,
        executor: JobExecutor,
        deployer: Deployer,
        artifacts: ArtifactRegistry,
        logs: LogStore,
        work_dir: Path,
        *,
        interval: float,
    ) -> None:
        super().__init__(repository, executor, interval=interval)
        self.deployer = deployer
        self.artifacts = artifacts
        self.logs = logs
        self.work_dir = work_dir

    def resumable(self, job: Resource) -> bool:
        return True  # the job runs again, skipping objects whose output is complete

    def final_state(self, state: dict[str, Any], final: str) -> dict[str, Any]:
        state.pop(PROGRESS, None)  # only a resumed run needs it
        return state

    async def run_job(self, job: Resource, stop: asyncio.Event) -> None:
        started = job.state.get("TransformStartTime") or time.time()  # kept across restarts
        await self.update_state(job.name, TransformStartTime=started)
        try:
            prepared = await asyncio.to_thread(self._prepare, job)
        except (InputError, DeploymentError) as exc:
            await self._end(job, FAILED, FailureReason=f"ClientError: {exc}"[:1024])
            return
        except SabioError as exc:
            await self._end(job, FAILED, FailureReason=f"ClientError: {exc.message}"[:1024])
            return
        if stop.is_set():
            await self._end(job, STOPPED)
            return
        epoch = int(time.time())
        for index in range(prepared.plan.instance_count):
            log_path(self.deployer.logs_dir, job.name, VARIANT, index).unlink(missing_ok=True)
        running: list[RunningInstance] = []
        tail = LogTail(self.logs, self.deployer.logs_dir, job.name, epoch)
        tailing = asyncio.create_task(tail.follow(prepared.plan.instance_count))
        run: TransformRun | None = None
        try:
            try:
                await self._start_workers(job.name, prepared.plan, running)
            except DeploymentError as exc:
                reason = str(exc).replace(f"variant {VARIANT}", f"transform job {job.name}")
                await self._end(job, FAILED, FailureReason=f"ClientError: {reason}"[:1024])
                return
            lost: list[str] = []
            with self.logs.stream_writer(LOG_GROUP, f"{job.name}/algo-1-{epoch}/data-log") as sink:
                run = self._run(job, prepared, running, sink, started, lost)
                result = await self._execute(run, stop)
            exits = lost + [
                f"algo-{r.index + 1} with code {r.process.returncode}"
                for r in sorted(running, key=lambda r: r.index)
                if r.process.returncode is not None
            ]
            capture_error = await self._capture(job, prepared, result, started)
            # Record the outcome with the workers' output so far, then stop them.
            await _cancel(tailing)
            await asyncio.to_thread(tail.drain, prepared.plan.instance_count, False)
            if capture_error and not result.stopped:
                await self._end(job, FAILED, FailureReason=capture_error[:1024])
            else:
                await self._record(job, result, exits)
        except asyncio.CancelledError:
            if run is not None:
                run.request_stop()
            raise
        finally:
            await asyncio.gather(*(self.deployer.stop_instance(r) for r in running))
            await _cancel(tailing)
            await asyncio.to_thread(tail.drain, prepared.plan.instance_count)
            shutil.rmtree(self.work_dir / job.name, ignore_errors=True)

    async def _capture(
        self, job: Resource, prepared: _Prepared, result: RunResult, started: float
    ) -> str | None:
        """Write the data capture manifests, if asked for; why that failed, if it did."""
        capture = job.spec.get("DataCaptureConfig")
        if not capture:
            return None
        written = {r.source for r in result.files if r.error is None}
        done = [o for o in prepared.inputs if str(o.uri) in written]
        try:
            await asyncio.to_thread(
                write_manifests, self.artifacts, capture, job.name, started, done
            )
        except (SabioError, OSError) as exc:
            message = exc.message if isinstance(exc, SabioError) else str(exc)
            where = capture["DestinationS3Uri"]
            return f"ClientError: writing the data capture manifests to {where} failed: {message}"
        return None

    async def _record(self, job: Resource, result: RunResult, exits: list[str]) -> None:
        fields: dict[str, Any] = {}
        if result.effective is not None:
            fields["Effective"] = result.effective.describe()
        if result.stopped:
            await self._end(job, STOPPED, **fields)
        elif result.fatal is not None or result.failures:
            fields["FailureReason"] = _failure_reason(result, job.name, exits)
            await self._end(job, FAILED, **fields)
        else:
            await self._end(job, COMPLETED, **fields)

    async def _end(self, job: Resource, final: str, **fields: Any) -> None:
        await self.finish(job, final, TransformEndTime=time.time(), **fields)

    # Preparation (in a thread)

    def _prepare(self, job: Resource) -> _Prepared:
        spec = job.spec
        source = spec["TransformInput"]["DataSource"]["S3DataSource"]
        store, inputs = list_inputs(self.artifacts, source, spec["TransformOutput"]["S3OutputPath"])
        model = copy.deepcopy(spec[MODEL_SNAPSHOT])
        container = containers_of(model)[0]
        resources = spec["TransformResources"]
        container["Environment"] = {
            **_thread_share(resources["InstanceType"], int(resources["InstanceCount"])),
            **(container.get("Environment") or {}),
            **_batch_environment(spec),
            **(spec.get("Environment") or {}),
        }
        variant = {
            "VariantName": VARIANT,
            "ModelName": spec["ModelName"],
            "InstanceType": resources["InstanceType"],
            "InitialInstanceCount": int(resources["InstanceCount"]),
        }
        # The deployer prepares a model exactly as for an endpoint variant.
        endpoint = Resource(
            "endpoint",
            job.name,
            job.arn,
            {"Config": {"ProductionVariants": [variant]}, "Models": {spec["ModelName"]: model}},
            job.created_at,
            job.updated_at,
        )
        (plan,) = self.deployer.plan(endpoint)
        return _Prepared(store, inputs, plan)

    # Workers

    async def _start_workers(
        self, name: str, plan: VariantPlan, running: list[RunningInstance]
    ) -> None:
        async def start(index: int) -> None:
            running.append(await self.deployer.start_instance(name, plan, index))

        try:
            async with asyncio.TaskGroup() as group:
                for index in range(plan.instance_count):
                    group.create_task(start(index))
        except BaseExceptionGroup as failures:
            raise failures.exceptions[0] from None

    def _run(
        self,
        job: Resource,
        prepared: _Prepared,
        running: list[RunningInstance],
        sink: LineSink,
        started: float,
        lost: list[str],
    ) -> TransformRun:
        def data_log(line: str) -> None:
            with contextlib.suppress(ValueError):  # closed: the job was cut off
                sink.write(line + "\n")

        loop = asyncio.get_running_loop()

        def replace(slot: int) -> Awaitable[Worker]:
            """Called in the run's event loop; the worker starts in the server's."""
            replacing = self._replace(job.name, prepared.plan, running, slot, lost)
            return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(replacing, loop))

        def save(done: dict[str, Any]) -> None:
            current = self.repository.get(self.kind.key, job.name)
            if current is not None:
                state = {**current.state, PROGRESS: done}
                self.repository.update(self.kind.key, job.name, state=state)

        capture = job.spec.get("DataCaptureConfig") or {}
        options = options_of(job.spec)
        return TransformRun(
            store=prepared.store,
            inputs=prepared.inputs,
            workers=[_worker(r) for r in sorted(running, key=lambda r: r.index)],
            options=options,
            work_dir=self.work_dir / job.name,
            data_log=data_log,
            replace=replace,
            replacements=_REPLACEMENTS_PER_INSTANCE * prepared.plan.instance_count,
            progress=Progress(job.state.get(PROGRESS) or {}, save),
            stamp=InferenceIds(options.accept, started)
            if capture.get("GenerateInferenceId")
            else None,
        )

    async def _replace(
        self,
        name: str,
        plan: VariantPlan,
        running: list[RunningInstance],
        slot: int,
        lost: list[str],
    ) -> Worker:
        """A new model worker in the slot of one that exited."""
        for dead in [r for r in running if r.index == slot]:
            lost.append(f"algo-{slot + 1} with code {dead.process.returncode}")
            running.remove(dead)
            await self.deployer.stop_instance(dead)
        log.warning("model worker algo-%d of transform job %s exited; replacing it", slot + 1, name)
        fresh = await self.deployer.start_instance(name, plan, slot)
        running.append(fresh)
        return _worker(fresh)

    @staticmethod
    async def _execute(run: TransformRun, stop: asyncio.Event) -> RunResult:
        work = asyncio.ensure_future(asyncio.to_thread(run.run))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                run.request_stop()
            return await work
        finally:
            stopping.cancel()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _worker(running: RunningInstance) -> Worker:
    process = running.process
    return Worker(
        f"algo-{running.index + 1}", running.endpoint.socket_path, lambda: process.returncode
    )


def _thread_share(instance_type: str, count: int) -> dict[str, str]:
    """Thread pools sized to each instance's share of this machine's cores.

    The instances of a transform job run at once on this machine and each would size its
    BLAS/OpenMP pools to its instance type; on fewer cores than that, the spinning pools of
    several workers slow each other down (by a third with two instances on two cores)."""
    described = instance_types.lookup(instance_type)
    cpus = described.cpus if described is not None else 1
    share = max(1, min(cpus, (os.cpu_count() or 1) // max(1, count)))
    if share >= cpus:
        return {}
    return {name: str(share) for name in _THREAD_VARIABLES}


def _batch_environment(spec: dict[str, Any]) -> dict[str, str]:
    """What SageMaker tells a container it is serving a batch transform."""
    split = spec["TransformInput"].get("SplitType") or NONE
    strategy = spec.get("BatchStrategy") or (SINGLE_RECORD if split == NONE else MULTI_RECORD)
    env = {"SAGEMAKER_BATCH": "true", "SAGEMAKER_BATCH_STRATEGY": _STRATEGY_VARIABLE[strategy]}
    payload = spec.get("MaxPayloadInMB")
    env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = "6" if payload is None else str(payload)
    if spec.get("MaxConcurrentTransforms"):
        env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(spec["MaxConcurrentTransforms"])
    return env


def _failure_reason(result: RunResult, job: str, exits: list[str]) -> str:
    fatal = result.fatal
    if fatal is not None and exits:
        fatal = f"{fatal} ({', '.join(exits)}); see the worker streams of {job} in {LOG_GROUP}"
    failures = result.failures
    if failures:
        first = (failures[0].error or "").rstrip(". ")
        reason = f"ClientError: {first}. No output was written for this object."
        if len(failures) > 1:
            reason += (
                f" {len(failures) - 1} more object(s) failed; see the data-log stream of "
                f"{job} in {LOG_GROUP}."
            )
    else:
        reason = f"ClientError: {fatal}."
    if fatal is not None and failures:
        reason += f" The job stopped early: {fatal}."
    return reason[:1024]
