"""Serverless variants: workers started on demand, stopped when idle, capped by MaxConcurrency.

A variant with a `ServerlessConfig` has no fixed instance count. Its `ServerlessPool` sits in
front of the router's variant as its admission gate (`Gate`):

- An invocation takes one of `MaxConcurrency` slots; one more is refused with
  `ThrottlingException` (400), as SageMaker refuses it, and botocore reads it as throttling.
- A request that finds no free worker starts one (a cold start) and is answered by the first
  worker that is free. Each worker is one concurrent slot, as a SageMaker serverless container
  is, so a variant grows to `MaxConcurrency` workers, capped by `SABIO_SERVERLESS_MAX_WORKERS`
  so that a laptop is not swamped; past the cap, requests queue on the least busy worker.
- `ProvisionedConcurrency` workers are kept running; others are stopped after
  `SABIO_SERVERLESS_IDLE_SECONDS` without use (when a whole idle period went by with fewer
  requests in flight than workers, down to what the period needed).
- Cold starts fork from a pre-warmed parent (`sabio.serving.prewarm`), one per model
  environment, and fall back to starting the worker afresh when no parent can run. Each cold
  start's duration is recorded as the variant's `ModelSetupTime`.
- Each worker is limited to `MemorySizeInMB`; one killed for exceeding it is reported in its
  log and replaced on demand.
- `UpdateEndpointWeightsAndCapacities` changes `MaxConcurrency` and `ProvisionedConcurrency` of
  a running pool in place (`resize`), without a new pool and without touching requests in
  flight.
- A variant with provisioned concurrency reports its concurrency and each invocation (within
  the provisioned concurrency or spilling over) to its recorder, for SageMaker's
  `ServerlessProvisionedConcurrency*` metrics (`sabio.telemetry.serverless_metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sabio.endpoints.deployment import (
    Deployer,
    DeploymentError,
    RunningInstance,
    VariantPlan,
    log_path,
)
from sabio.errors import ModelError, ModelNotReadyError, SabioError
from sabio.serving.forked_workers import ForkedProcess, PrewarmParent
from sabio.serving.router import Variant
from sabio.telemetry.serverless_metrics import ConcurrencyRecorder

log = logging.getLogger("sabio.endpoints.serverless")

_MAX_RETRY_DELAY = 30.0
_EXIT_GRACE_SECONDS = 2.0


class ThrottlingError(SabioError):
    """More concurrent invocations than the serverless variant's MaxConcurrency."""

    code = "ThrottlingException"
    status = 400


@dataclass(frozen=True)
class ServerlessPolicy:
    max_concurrency: int
    provisioned: int
    max_workers: int
    idle_seconds: float

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], idle_seconds: float, max_workers: int
    ) -> ServerlessPolicy:
        concurrency = int(config["MaxConcurrency"])
        workers = max(1, min(concurrency, max_workers))
        provisioned = min(int(config.get("ProvisionedConcurrency") or 0), workers)
        return cls(concurrency, provisioned, workers, idle_seconds)


class Parents(Protocol):
    """Where cold starts get their pre-warmed parent (`prewarm_fleet.Prewarmer`)."""

    async def parent(self, python: Path) -> PrewarmParent | None: ...


class ServerlessPool:
    """The workers of one serverless variant and the policy that starts and stops them."""

    def __init__(
        self,
        endpoint: str,
        plan: VariantPlan,
        policy: ServerlessPolicy,
        deployer: Deployer,
        prewarmer: Parents | None,
    ) -> None:
        self.endpoint = endpoint
        self.plan = plan
        self.policy = policy
        self.deployer = deployer
        self.prewarmer = prewarmer
        self.variant: Variant | None = None
        self.workers: list[RunningInstance] = []
        self.in_flight = 0
        now = time.monotonic()
        self.last_used = now
        self._window_start = now
        self._window_peak = 0
        self._starting: set[asyncio.Task[RunningInstance | None]] = set()
        self._reserved: set[int] = set()
        self._chores: set[asyncio.Task[None]] = set()
        self._last_error = ""
        self._failures = 0
        self._retry_at = 0.0
        self._closed = False

    # The gate, called by the router around each invocation.

    async def enter(self) -> None:
        if self.in_flight >= self.policy.max_concurrency:
            raise ThrottlingError(
                f"Variant {self.plan.name} of serverless endpoint {self.endpoint} is serving "
                f"its maximum of {self.policy.max_concurrency} concurrent invocations "
                "(MaxConcurrency). Retry with backoff, or raise MaxConcurrency."
            )
        self.in_flight += 1
        self.last_used = time.monotonic()
        self._window_peak = max(self._window_peak, self.in_flight)
        self._report_concurrency(invoked=True)
        try:
            # One worker per request in flight: start another while there are fewer.
            if self.in_flight > self._healthy_count() + len(self._starting) and self._room():
                self._spawn()
            if self._must_wait():
                await self._wait_for_worker()
        except BaseException:
            self.leave()
            raise

    def leave(self) -> None:
        self.in_flight -= 1
        self.last_used = time.monotonic()
        self._report_concurrency()

    # Lifecycle, called by the controller.

    async def start_provisioned(self) -> None:
        """Bring up the provisioned workers (and the pre-warmed parent) before the variant
        takes traffic; raises DeploymentError if they cannot start."""
        if self.prewarmer is not None:
            await self.prewarmer.parent(self.plan.python)
        tasks = [self._spawn() for _ in range(self.policy.provisioned)]
        results = await asyncio.gather(*tasks)
        if any(r is None for r in results):
            raise DeploymentError(self._last_error or "a serverless worker did not start")

    def bind(self, variant: Variant) -> None:
        self.variant = variant
        variant.gate = self
        self._publish()
        self._report_concurrency()

    async def tick(self) -> None:
        """Remove dead workers, stop idle ones, keep the provisioned ones running."""
        if self._closed:
            return
        await asyncio.gather(*(self._retire(worker) for worker in self._prune()))
        await self._scale_down(time.monotonic())
        missing = self.policy.provisioned - len(self.workers) - len(self._starting)
        if missing > 0 and time.monotonic() >= self._retry_at:
            for _ in range(missing):
                self._spawn()

    async def resize(self, plan: VariantPlan, policy: ServerlessPolicy) -> None:
        """Take a new MaxConcurrency and ProvisionedConcurrency (UpdateEndpointWeightsAndCapacities)
        in place: requests in flight go on; idle workers given up (provisioned ones released,
        any over the new cap) stop; new provisioned workers are up before this returns, and it
        raises DeploymentError if they cannot start (`tick` then keeps trying)."""
        old, self.plan, self.policy = self.policy, plan, policy
        self._report_concurrency()
        count = len(self.workers)
        released = min(old.provisioned - policy.provisioned, count - policy.provisioned)
        await self._stop_idle(max(count - policy.max_workers, released))
        missing = policy.provisioned - len(self.workers) - len(self._starting)
        results = await asyncio.gather(*(self._spawn() for _ in range(missing)))
        if any(r is None for r in results):
            raise DeploymentError(self._last_error or "a serverless worker did not start")
        log.info(
            "serverless variant %s of %s now allows %d concurrent invocation(s), %d provisioned",
            plan.name,
            self.endpoint,
            policy.max_concurrency,
            policy.provisioned,
        )

    async def close(self) -> None:
        """Stop every worker once its requests are answered (a few seconds at most)."""
        self._closed = True
        for task in list(self._starting):
            task.cancel()
        await asyncio.gather(*self._starting, *self._chores, return_exceptions=True)
        workers, self.workers = self.workers, []
        self._publish()
        deadline = time.monotonic() + 10
        while any(w.endpoint.outstanding for w in workers) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.gather(*(self.deployer.stop_instance(w) for w in workers))

    # Internals.

    def _provisioned(self) -> int:
        """The ProvisionedConcurrency the variant is configured with (its metrics' divisor)."""
        serverless = self.plan.serverless or {}
        return int(serverless.get("ProvisionedConcurrency") or 0)

    def _report_concurrency(self, invoked: bool = False) -> None:
        """Tell the variant's provisioned-concurrency recorder (made once the variant has
        provisioned concurrency and is routed) the concurrency now, or one invocation."""
        metrics = self.variant.metrics if self.variant is not None else None
        if metrics is None:
            return
        provisioned = self._provisioned()
        if metrics.concurrency is None:
            if provisioned <= 0:
                return
            metrics.concurrency = ConcurrencyRecorder(metrics.period, metrics.history.maxlen or 1)
        if invoked:
            metrics.concurrency.invoked(self.in_flight, provisioned)
        else:
            metrics.concurrency.level(self.in_flight, provisioned)

    def _prune(self) -> list[RunningInstance]:
        """Take dead workers, and failing ones with nothing in flight, out of service."""
        gone = [
            w
            for w in self.workers
            if w.process.returncode is not None
            or (not w.endpoint.healthy and not w.endpoint.outstanding)
        ]
        for worker in gone:
            self.workers.remove(worker)
            worker.endpoint.healthy = False
        if gone:
            self._publish()
        return gone

    async def _retire(self, worker: RunningInstance) -> None:
        if worker.process.returncode is None:
            # A worker taken out because its connection broke is usually dying already (an OOM
            # kill, a crash): let its exit be seen, so the reason reaches its log.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(worker.process.wait(), _EXIT_GRACE_SECONDS)
        if worker.process.returncode is not None:
            self._report_exit(worker)
        await self.deployer.stop_instance(worker)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    def _healthy_count(self) -> int:
        return sum(1 for w in self.workers if w.endpoint.healthy)

    def _room(self) -> bool:
        return len(self.workers) + len(self._starting) < self.policy.max_workers

    def _publish(self) -> None:
        if self.variant is not None:
            ordered = sorted(self.workers, key=lambda w: w.index)
            self.variant.instances = [w.endpoint for w in ordered if w.endpoint.healthy]

    def _must_wait(self) -> bool:
        """No worker can take a request now, or every one is busy while another starts."""
        if self._healthy_count() == 0:
            return True
        idle = any(w.endpoint.healthy and not w.endpoint.outstanding for w in self.workers)
        return not idle and bool(self._starting)

    async def _wait_for_worker(self) -> None:
        while self._must_wait():
            if self._closed:
                raise ModelNotReadyError(
                    f"Variant {self.plan.name} of endpoint {self.endpoint} is being replaced. "
                    "Retry shortly."
                )
            if not self._starting and self._healthy_count() == 0:
                if not self._room():
                    # Every worker slot is held by a worker that is dead or failing: replace it.
                    for worker in self._prune():
                        self._background(self._retire(worker))
                    if not self._room():
                        await asyncio.sleep(0.05)
                        continue
                self._spawn()
            # The first worker free serves this request, whichever start it came from.
            done, _ = await asyncio.wait(
                set(self._starting), timeout=0.05, return_when=FIRST_COMPLETED
            )
            failed = bool(done) and all(t.cancelled() or t.result() is None for t in done)
            if failed and not self._starting and self._healthy_count() == 0:
                raise ModelError(
                    f"The serverless variant {self.plan.name} could not start a worker: "
                    f"{self._last_error}",
                    OriginalStatusCode=0,
                )

    def _spawn(self) -> asyncio.Task[RunningInstance | None]:
        index = 0
        taken = {w.index for w in self.workers} | self._reserved
        while index in taken:
            index += 1
        self._reserved.add(index)
        task = asyncio.create_task(self._start_worker(index))
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)
        return task

    async def _start_worker(self, index: int) -> RunningInstance | None:
        started = time.perf_counter_ns()
        try:
            parent = None
            if self.prewarmer is not None:
                parent = await self.prewarmer.parent(self.plan.python)
            launch = None if parent is None else parent.launch
            running = await self.deployer.start_instance(self.endpoint, self.plan, index, launch)
        except Exception as exc:  # any failure to start is this worker's, not the caller's
            self._last_error = exc.message if isinstance(exc, SabioError) else str(exc)
            self._failures += 1
            delay = min(0.5 * 2**self._failures, _MAX_RETRY_DELAY)
            self._retry_at = time.monotonic() + delay
            log.warning(
                "serverless worker %s-%d of %s did not start: %s",
                self.plan.name,
                index + 1,
                self.endpoint,
                self._last_error,
            )
            return None
        finally:
            self._reserved.discard(index)
        if self._closed:
            await self.deployer.stop_instance(running)
            return None
        self._failures = 0
        self.workers.append(running)
        self._publish()
        micros = (time.perf_counter_ns() - started) // 1000
        metrics = self.variant.metrics if self.variant is not None else None
        if metrics is not None:
            metrics.record_setup(micros)
        log.info(
            "serverless worker %s-%d of %s started in %.0f ms (%s)",
            self.plan.name,
            index + 1,
            self.endpoint,
            micros / 1000,
            "forked" if isinstance(running.process, ForkedProcess) else "spawned",
        )
        return running

    async def _scale_down(self, now: float) -> None:
        policy = self.policy
        target: int | None = None
        if not self.in_flight and now - self.last_used >= policy.idle_seconds:
            target = policy.provisioned
        elif now - self._window_start >= policy.idle_seconds:
            target = max(policy.provisioned, self._window_peak)
        if now - self._window_start >= policy.idle_seconds:
            self._window_start = now
            self._window_peak = self.in_flight
        if target is not None:
            await self._stop_idle(len(self.workers) - target)

    async def _stop_idle(self, count: int) -> None:
        """Stop up to `count` workers that serve nothing, newest first; busy ones are left to
        finish (a later idle period takes them)."""
        if count <= 0:
            return
        surplus = [w for w in sorted(self.workers, key=lambda w: -w.index)]
        surplus = [w for w in surplus if not w.endpoint.outstanding][:count]
        for worker in surplus:
            self.workers.remove(worker)
            worker.endpoint.healthy = False
        self._publish()
        if surplus:
            log.info(
                "serverless variant %s of %s scaled down to %d worker(s)",
                self.plan.name,
                self.endpoint,
                len(self.workers),
            )
        await asyncio.gather(*(self.deployer.stop_instance(w) for w in surplus))

    def _report_exit(self, worker: RunningInstance) -> None:
        process = worker.process
        if process.oom_killed():
            limit = self.plan.memory_bytes // 1024**2
            message = (
                f"The worker exceeded its memory limit of {limit} MB (MemorySizeInMB) and was "
                "stopped; the request it was serving failed. Raise MemorySizeInMB or reduce "
                "the model's memory use."
            )
        else:
            message = f"The worker exited with code {process.returncode}."
        log.warning(
            "serverless worker %s-%d of %s: %s",
            self.plan.name,
            worker.index + 1,
            self.endpoint,
            message,
        )
        path = log_path(self.deployer.logs_dir, self.endpoint, self.plan.name, worker.index)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with contextlib.suppress(OSError), path.open("a", encoding="utf-8") as handle:
            handle.write(f"{stamp} ERROR sabio.serverless: {message}\n")
