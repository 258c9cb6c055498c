"""Multi-model variants: a model whose container has `Mode: MultiModel` serves every
`*.tar.gz` archive under its `ModelDataUrl` prefix, each named by the invocation's `TargetModel`
(a key relative to the prefix).

A variant's `ModelPool` loads a target model on its first invocation: the archive is fetched
and extracted (`ModelDataCache`, shared with single-model endpoints) and one model worker is
started for it, forked from the environment's pre-warmed parent, so a load costs the archive's
extraction and the model's own `model_fn`. Loaded models stay up; beyond
`SABIO_MME_MAX_LOADED` models per variant, the least recently used one that is serving nothing
is stopped. Concurrent invocations of a model that is loading wait for the same load. A
`TargetModel` is always resolved under the prefix: absolute paths, `..` and empty segments are
refused. Loads, waits and unloads are published as SageMaker's model loading metrics
(`sabio.endpoints.multi_model_metrics`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import logging
import time
from collections import OrderedDict

from sabio.artifacts.uri import parse
from sabio.endpoints.deployment import Deployer, DeploymentError, RunningInstance, VariantPlan
from sabio.endpoints.multi_model_metrics import (
    CACHE_HIT,
    DOWNLOADING_TIME,
    LOADED_MODEL_COUNT,
    LOADING_TIME,
    LOADING_WAIT_TIME,
    UNLOADING_TIME,
    MultiModelMetrics,
)
from sabio.endpoints.pool_fleet import PoolFleet
from sabio.endpoints.prewarm_fleet import Prewarmer
from sabio.errors import ModelError, ModelNotReadyError, RuntimeValidationError, SabioError
from sabio.serving.model_data import ModelDataError
from sabio.serving.router import Instance, Variant

log = logging.getLogger("sabio.endpoints.multi_model")

_ATTEMPTS = 3


def target_uri(prefix: str, target: str) -> str:
    """The archive a `TargetModel` names under `prefix`; a ValidationError for a target that
    would leave it."""
    parts = target.split("/")
    if (
        not target
        or target.startswith("/")
        or "\\" in target
        or any(part in ("", ".", "..") for part in parts)
        or not target.isprintable()
    ):
        raise RuntimeValidationError(
            f"TargetModel '{target}' is not a relative path to a model under the endpoint's "
            "model data prefix."
        )
    base = parse(prefix)
    root = base.key if base.key.endswith("/") or not base.key else base.key + "/"
    uri = parse(f"{base.scheme}://{base.bucket}/{root}{target}")
    if uri.bucket != base.bucket or not uri.key.startswith(root):
        raise RuntimeValidationError(f"TargetModel '{target}' is not under the model prefix.")
    return str(uri)


class ModelPool:
    """The loaded models of one multi-model variant, least recently used first."""

    def __init__(
        self,
        endpoint: str,
        plan: VariantPlan,
        deployer: Deployer,
        prewarmer: Prewarmer | None,
        metrics: MultiModelMetrics,
        max_loaded: int,
    ) -> None:
        if plan.multi_model is None:
            raise ValueError("not a multi-model variant")
        self.endpoint = endpoint
        self.plan = plan
        self.prefix = plan.multi_model
        self.deployer = deployer
        self.prewarmer = prewarmer
        self.metrics = metrics
        self.max_loaded = max(1, max_loaded)
        self.variant: Variant | None = None
        self._loaded: OrderedDict[str, RunningInstance] = OrderedDict()
        self._loading: dict[str, asyncio.Task[RunningInstance]] = {}
        self._indexes = itertools.count()
        self._stopping: set[asyncio.Task[None]] = set()
        self._closed = False

    def bind(self, variant: Variant) -> None:
        self.variant = variant
        variant.models = self
        self._publish()

    async def acquire(self, target: str | None, request_id: str) -> Instance:
        """The instance serving `target`, loaded now if need be, with one more request
        outstanding (the router's `Variant.release` takes it back)."""
        if not target:
            request = f"Request {request_id}" if request_id else "The request"
            raise RuntimeValidationError(f"{request} is missing a target model header.")
        uri = target_uri(self.prefix, target)
        if self._closed:
            raise ModelNotReadyError(f"Endpoint {self.endpoint} is being replaced. Retry shortly.")
        waited = time.perf_counter()
        hit = True
        for _ in range(_ATTEMPTS):
            running = self._loaded.get(target)
            if running is not None and not _alive(running):
                self._unload(target, running)
                self._background_stop(running)
                running = None
            if running is None:
                hit = False
                task = self._loading.get(target)
                if task is None:
                    task = asyncio.create_task(self._load(target, uri))
                    self._loading[target] = task
                    task.add_done_callback(functools.partial(self._loaded_or_failed, target))
                # A request that gives up does not cancel a load others may be waiting for.
                running = await asyncio.shield(task)
                if self._loaded.get(target) is not running or not _alive(running):
                    continue  # unloaded again before this request could take it
            self._loaded.move_to_end(target)
            running.endpoint.outstanding += 1
            self._record(CACHE_HIT, 1.0 if hit else 0.0)
            if not hit:
                self._seconds(LOADING_WAIT_TIME, time.perf_counter() - waited)
            return running.endpoint
        raise ModelNotReadyError(
            f"Model {target} of endpoint {self.endpoint} is being loaded and unloaded by other "
            "requests. Retry shortly."
        )

    async def close(self) -> None:
        """Stop every model's worker once its requests are answered (a few seconds at most)."""
        self._closed = True
        loading = list(self._loading.values())
        for task in loading:
            task.cancel()
        await asyncio.gather(*loading, *self._stopping, return_exceptions=True)
        workers = list(self._loaded.values())
        self._loaded.clear()
        self._publish()
        deadline = time.monotonic() + 10
        while any(w.endpoint.outstanding for w in workers) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.gather(*(self.deployer.stop_instance(w) for w in workers))

    # Internals.

    def _loaded_or_failed(self, target: str, task: asyncio.Task[RunningInstance]) -> None:
        if self._loading.get(target) is task:
            del self._loading[target]
        if not task.cancelled():
            task.exception()  # seen here: a load every waiter gave up on is not logged as lost

    async def _load(self, target: str, uri: str) -> RunningInstance:
        started = time.perf_counter()
        try:
            model_dir = await asyncio.to_thread(self.deployer.models.archive, uri)
        except (ModelDataError, SabioError) as exc:
            parsed = parse(uri)
            log.info("model %s of %s could not be fetched: %s", target, self.endpoint, exc)
            raise RuntimeValidationError(
                f"Failed to download model data(bucket: {parsed.bucket}, key: {parsed.key}). "
                "Please ensure that there is an object located at the URL and that the role "
                "passed to CreateModel has permissions to download the model."
            ) from None
        fetched = time.perf_counter()
        self._seconds(DOWNLOADING_TIME, fetched - started)
        await self._make_room()
        plan = dataclasses.replace(self.plan, model_dir=model_dir)
        launch = None if self.prewarmer is None else self.prewarmer.launcher(plan.python)
        try:
            running = await self.deployer.start_instance(
                self.endpoint, plan, next(self._indexes), launch
            )
        except DeploymentError as exc:
            raise ModelError(
                f"Model {target} of endpoint {self.endpoint} failed to load: {exc}",
                OriginalStatusCode=0,
            ) from None
        if self._closed:
            await self.deployer.stop_instance(running)
            raise ModelNotReadyError(f"Endpoint {self.endpoint} is being replaced. Retry shortly.")
        self._seconds(LOADING_TIME, time.perf_counter() - fetched)
        self._loaded[target] = running
        self._publish()
        self._record(LOADED_MODEL_COUNT, float(len(self._loaded)))
        log.info(
            "model %s of %s loaded in %.0f ms (%d loaded)",
            target,
            self.endpoint,
            (time.perf_counter() - started) * 1000,
            len(self._loaded),
        )
        return running

    async def _make_room(self) -> None:
        """Unload the least recently used models serving nothing until one more fits; models
        that are all busy are left running (the variant is over its cap until they finish)."""
        while len(self._loaded) >= self.max_loaded:
            idle = [(k, r) for k, r in self._loaded.items() if not r.endpoint.outstanding]
            if not idle:
                return
            target, running = idle[0]
            self._unload(target, running)
            started = time.perf_counter()
            await self.deployer.stop_instance(running)
            self._seconds(UNLOADING_TIME, time.perf_counter() - started)
            log.info("model %s of %s unloaded", target, self.endpoint)

    def _unload(self, target: str, running: RunningInstance) -> None:
        """Take a model out of service; the caller stops its worker."""
        self._loaded.pop(target, None)
        running.endpoint.healthy = False
        self._publish()
        self._record(LOADED_MODEL_COUNT, float(len(self._loaded)))

    def _background_stop(self, running: RunningInstance) -> None:
        """Stop a worker taken out of service (dead, or its connection broke) once its
        requests are answered, without holding up the request that found it so."""
        task = asyncio.create_task(self._drain_and_stop(running))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _drain_and_stop(self, running: RunningInstance) -> None:
        deadline = time.monotonic() + 10
        while running.endpoint.outstanding and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await self.deployer.stop_instance(running)

    def _publish(self) -> None:
        if self.variant is not None:
            self.variant.instances = [r.endpoint for r in self._loaded.values()]

    def _record(self, metric: str, value: float) -> None:
        self.metrics.sample(self.endpoint, self.plan.name, metric, value)

    def _seconds(self, metric: str, seconds: float) -> None:
        self.metrics.seconds(self.endpoint, self.plan.name, metric, seconds)


def _alive(running: RunningInstance) -> bool:
    return running.process.returncode is None and running.endpoint.healthy


class MultiModelFleet(PoolFleet["ModelPool"]):
    """Every multi-model variant's pool, by endpoint."""

    def __init__(self, deployer: Deployer, prewarmer: Prewarmer | None, max_loaded: int) -> None:
        super().__init__()
        self.deployer = deployer
        self.prewarmer = prewarmer
        self.max_loaded = max_loaded
        self.metrics = MultiModelMetrics()

    async def prepare(self, endpoint: str, plans: list[VariantPlan]) -> None:
        """Pools (empty) for the multi-model variants of `plans`, ready for `bind`; the
        environment's pre-warmed parent is started so that the first load forks."""
        pools = {
            plan.name: ModelPool(
                endpoint, plan, self.deployer, self.prewarmer, self.metrics, self.max_loaded
            )
            for plan in plans
            if plan.multi_model is not None
        }
        await self._begin(endpoint, pools)
        if self.prewarmer is not None:
            for pool in pools.values():
                self.prewarmer.warm(pool.plan.python)
