"""The endpoint controller: an asyncio task in the server that brings each endpoint to the state
recorded in the store (`Creating -> InService | Failed`, `Deleting -> gone`), restarts workers
that die, and after a server restart brings InService endpoints back."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import time
from collections.abc import Callable, Coroutine
from typing import Any

from sabio.arns import ArnFactory
from sabio.endpoints.deployment import Deployer, DeploymentError, RunningInstance, VariantPlan
from sabio.endpoints.multi_model import MultiModelFleet
from sabio.endpoints.prewarm_fleet import Prewarmer
from sabio.endpoints.serverless_fleet import ServerlessFleet
from sabio.endpoints.service import CREATING, DELETING, FAILED, IN_SERVICE, UPDATING
from sabio.endpoints.shadow_config import all_variants
from sabio.endpoints.variant_routes import build_route, variant_state
from sabio.errors import SabioError
from sabio.reconcile import ReconcileLoop
from sabio.resources import ENDPOINT
from sabio.serving.router import Route, Router
from sabio.store.entities import Resource
from sabio.store.repository import Repository

log = logging.getLogger("sabio.endpoints")

_MAX_RESTART_DELAY = 30.0
_STABLE_SECONDS = 60.0
_PING_FAILURES = 3


class EndpointController(ReconcileLoop):
    def __init__(
        self,
        repository: Repository,
        deployer: Deployer,
        router: Router,
        arns: ArnFactory,
        *,
        interval: float,
        health_check_interval: float = 5.0,
        serverless_idle_seconds: float = 300.0,
        serverless_max_workers: int = 4,
        prewarm: bool = True,
        prewarm_environments: int = 0,
        multi_model_max_loaded: int = 8,
    ) -> None:
        self.repository = repository
        # Workers fork from a pre-warmed parent of their environment when one is ready.
        self.prewarmer = Prewarmer(deployer) if prewarm else None
        self.prewarm_environments = prewarm_environments
        self.serverless = ServerlessFleet(
            deployer,
            idle_seconds=serverless_idle_seconds,
            max_workers=serverless_max_workers,
            prewarmer=self.prewarmer,
        )
        self.multi_model = MultiModelFleet(deployer, self.prewarmer, multi_model_max_loaded)
        router.metrics.variant_series.append(self.multi_model.metrics)
        self.health_check_interval = health_check_interval
        self.deployer = deployer
        self.router = router
        self.arns = arns
        super().__init__(interval)
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._endpoints: list[Resource] = []  # as last read; the first pass always reads
        self._running: dict[str, list[RunningInstance]] = {}
        self._plans: dict[str, dict[str, VariantPlan]] = {}
        self._restarts: dict[tuple[str, str, int], int] = {}
        self._retry_at: dict[tuple[str, str, int], float] = {}
        self.listeners: list[Callable[[], None]] = []
        """Called when an endpoint's route or record changes (it serves, was updated, failed
        or is gone), so that others (the async dispatcher) need not poll for it."""

    # Lifecycle

    async def start(self) -> None:
        if self.prewarmer is not None:
            self.prewarmer.prewarm_recent(self.prewarm_environments)
        await super().start()

    async def stop(self) -> None:
        """Stop every worker; recorded statuses stay as they are, so a restart restores them."""
        await self.stop_loop()
        for task in list(self._busy.values()):
            task.cancel()
        await asyncio.gather(*self._busy.values(), return_exceptions=True)
        instances = [i for group in self._running.values() for i in group]
        await asyncio.gather(*(self.deployer.stop_instance(i) for i in instances))
        self._running.clear()
        await self.serverless.shutdown()
        await self.multi_model.shutdown()
        if self.prewarmer is not None:
            await self.prewarmer.close()
        await self.router.close()

    # Reconciliation

    async def reconcile(self) -> None:
        # Records change through the API (which notifies) or through this controller's own
        # actions (which notify when they end); in between, passes supervise from memory.
        if self.must_read():
            self._endpoints = await asyncio.to_thread(self.repository.all, ENDPOINT.key)
        endpoints = self._endpoints
        present = {e.name.lower() for e in endpoints}
        for endpoint in endpoints:
            key = endpoint.name.lower()
            self._sync_route(endpoint)
            task = self._busy.get(key)
            if task is not None and not task.done():
                continue
            action = self._next_action(endpoint, key)
            if action is not None:
                task = asyncio.create_task(action(endpoint), name=f"endpoint-{key}")
                if action != self._supervise:
                    self.notify_when_done(task)
                self._busy[key] = task
        active = {k for k, t in self._busy.items() if not t.done()}
        gone = (set(self._running) | set(self.router.names())) - present - active
        for key in gone:
            await self._stop_all(key)
            await self.router.remove_route(key)
        for key in [k for k, t in self._busy.items() if t.done()]:
            self._busy.pop(key)

    def _next_action(
        self, endpoint: Resource, key: str
    ) -> Callable[[Resource], Coroutine[Any, Any, None]] | None:
        if endpoint.status == DELETING:
            return self._tear_down
        if endpoint.status == CREATING:
            return self._bring_up
        if endpoint.status == IN_SERVICE:
            return self._supervise if key in self._running else self._bring_up
        if endpoint.status == UPDATING:
            if key not in self._running:
                return self._bring_up
            return self._blue_green if endpoint.spec.get("Pending") else self._apply_update
        if endpoint.status == FAILED and key in self._running:
            return self._stop_leftovers
        return None

    def _sync_route(self, endpoint: Resource) -> None:
        route = self.router.route(endpoint.name)
        if route is None:
            group = self.arns.log_group(f"/aws/sagemaker/Endpoints/{endpoint.name}")
            self.router.set_route(Route(endpoint.name, endpoint.status or "", log_group=group))
        else:
            route.status = endpoint.status or ""

    async def _bring_up(self, endpoint: Resource) -> None:
        key = endpoint.name.lower()
        started = time.monotonic()
        await self._stop_all(key)
        try:
            plans = await asyncio.to_thread(self.deployer.plan, endpoint)
            self._plans[key] = {plan.name: plan for plan in plans}
            self._running[key] = []
            await self._start_all(endpoint.name, plans)
        except (DeploymentError, SabioError) as exc:
            reason = exc.message if isinstance(exc, SabioError) else str(exc)
            await self._fail(endpoint, reason)
            return
        except Exception as exc:
            log.exception("deploying endpoint %s failed", endpoint.name)
            await self._fail(endpoint, f"Internal error while deploying: {exc}")
            return
        state = variant_state(endpoint, plans)
        # An update cut off by a restart starts again once the current config serves.
        settled = UPDATING if endpoint.spec.get("Pending") else IN_SERVICE
        updated = await asyncio.to_thread(
            self.repository.update,
            ENDPOINT.key,
            endpoint.name,
            status=settled,
            state=state,
            expect_status=(CREATING, IN_SERVICE, UPDATING),
        )
        if updated is None:
            await self._stop_all(key)
            return
        self._install_route(endpoint.name, plans, endpoint.spec["Config"])
        log.info("endpoint %s is InService (%.2fs)", endpoint.name, time.monotonic() - started)

    async def _start_all(self, name: str, plans: list[VariantPlan]) -> None:
        """Start every instance at once; the first failure cancels the rest and is raised."""
        try:
            async with asyncio.TaskGroup() as group:
                for plan in plans:
                    for index in range(plan.instance_count):
                        group.create_task(self._start(name, plan, index))
        except BaseExceptionGroup as failures:
            raise failures.exceptions[0] from None
        await self.serverless.prepare(name, plans)
        await self.multi_model.prepare(name, plans)

    async def _start(self, endpoint: str, plan: VariantPlan, index: int) -> RunningInstance:
        running = await self._start_instance(endpoint, plan, index)
        self._running.setdefault(endpoint.lower(), []).append(running)
        return running

    async def _start_instance(
        self, endpoint: str, plan: VariantPlan, index: int
    ) -> RunningInstance:
        """A fork from the environment's pre-warmed parent when it is ready, else afresh."""
        if self.prewarmer is None:
            return await self.deployer.start_instance(endpoint, plan, index)
        return await self.prewarmer.start_instance(endpoint, plan, index)

    def _install_route(
        self, name: str, plans: list[VariantPlan], config: dict[str, Any] | None = None
    ) -> None:
        group = self.arns.log_group(f"/aws/sagemaker/Endpoints/{name}")
        running = self._running.get(name.lower(), [])
        route, variants = build_route(name, plans, running, config or {}, group)
        self.router.set_route(route)
        self.serverless.bind(name, variants)
        self.multi_model.bind(name, variants)
        self._changed()

    def _changed(self) -> None:
        for listener in self.listeners:
            listener()

    async def _fail(self, endpoint: Resource, reason: str) -> None:
        log.warning("endpoint %s failed: %s", endpoint.name, reason)
        await self._stop_all(endpoint.name.lower())
        await asyncio.to_thread(
            self.repository.update,
            ENDPOINT.key,
            endpoint.name,
            status=FAILED,
            state={"FailureReason": reason[:1024]},
            expect_status=(CREATING, IN_SERVICE),
        )
        route = self.router.route(endpoint.name)
        if route is not None:
            route.status = FAILED
            route.variants = []
            route.shadows = []
        self._changed()

    async def _supervise(self, endpoint: Resource) -> None:
        """Replace workers that died, and keep retrying slots whose replacement failed, with a
        growing delay for slots that keep failing."""
        key = endpoint.name.lower()
        running = self._running.setdefault(key, [])
        await self._health_check(endpoint.name, running)
        await self.serverless.tick(endpoint.name)
        for instance in [r for r in running if r.process.returncode is not None]:
            log.warning(
                "worker %s-%d of endpoint %s exited with code %s; restarting",
                instance.variant,
                instance.index + 1,
                endpoint.name,
                instance.process.returncode,
            )
            instance.endpoint.healthy = False
            running.remove(instance)
            await self.deployer.stop_instance(instance)
            if time.time() - instance.started_at > _STABLE_SECONDS:
                self._restarts.pop((key, instance.variant, instance.index), None)
        occupied = {(r.variant, r.index) for r in running}
        now = time.monotonic()
        for plan in self._plans.get(key, {}).values():
            for index in range(plan.instance_count):
                slot = (key, plan.name, index)
                if (plan.name, index) in occupied or self._retry_at.get(slot, 0.0) > now:
                    continue
                attempt = self._restarts.get(slot, 0)
                self._restarts[slot] = attempt + 1
                self._retry_at[slot] = now + min(0.5 * 2**attempt, _MAX_RESTART_DELAY)
                try:
                    replacement = await self._start(endpoint.name, plan, index)
                except Exception as exc:
                    log.warning(
                        "restarting worker %s-%d of %s failed: %s",
                        plan.name,
                        index + 1,
                        endpoint.name,
                        exc,
                    )
                    continue
                self._replace_in_route(endpoint.name, plan.name, replacement)

    async def _health_check(self, name: str, running: list[RunningInstance]) -> None:
        """Ping each worker now and then; one that stops answering is killed, and so replaced
        like a worker that died."""
        now = time.monotonic()
        due = [
            r
            for r in running
            if r.process.returncode is None and now - r.last_ping >= self.health_check_interval
        ]
        answers = await asyncio.gather(*(self.deployer.ping(r) for r in due))
        for instance, healthy in zip(due, answers, strict=True):
            instance.last_ping = now
            instance.ping_failures = 0 if healthy else instance.ping_failures + 1
            if healthy and not instance.endpoint.healthy:
                # Set aside after an answer broke off (a streamed response cut short by its
                # handler), yet alive and answering: it takes traffic again.
                instance.endpoint.healthy = True
            if instance.ping_failures >= _PING_FAILURES:
                log.warning(
                    "worker %s-%d of endpoint %s stopped answering /ping; replacing it",
                    instance.variant,
                    instance.index + 1,
                    name,
                )
                instance.endpoint.healthy = False
                instance.process.signal_group(signal.SIGKILL)

    def _replace_in_route(self, name: str, variant_name: str, replacement: RunningInstance) -> None:
        route = self.router.route(name)
        if route is None:
            return
        for variant in [*route.variants, *route.shadows]:
            if variant.name == variant_name:
                variant.instances = [i for i in variant.instances if i.healthy]
                variant.instances.append(replacement.endpoint)

    async def _apply_update(self, endpoint: Resource) -> None:
        """UpdateEndpointWeightsAndCapacities: new weights at once, instances added (healthy
        before they take traffic) or removed, serverless concurrency changed in place, without
        touching the others."""
        key = endpoint.name.lower()
        plans = self._plans[key]
        route = self.router.route(endpoint.name)
        for variant in all_variants(endpoint.spec["Config"]):
            plan = plans[variant["VariantName"]]
            serverless = variant.get("ServerlessConfig")
            multi = plan.multi_model is not None
            count = 0 if serverless or multi else int(variant["InitialInstanceCount"])
            weight = float(variant.get("InitialVariantWeight", 1.0))
            plans[plan.name] = updated = dataclasses.replace(
                plan, weight=weight, instance_count=count, serverless=serverless
            )
            running = self._running.setdefault(key, [])
            try:
                for index in range(plan.instance_count, count):
                    added = await self._start(endpoint.name, updated, index)
                    self._replace_in_route(endpoint.name, plan.name, added)
                await self.serverless.resize(endpoint.name, updated)
            except (DeploymentError, SabioError) as exc:
                log.warning("scaling %s up failed: %s", endpoint.name, exc)
            for extra in [r for r in running if r.variant == plan.name and r.index >= count]:
                running.remove(extra)
                extra.endpoint.healthy = False
                if route is not None:
                    for routed in [*route.variants, *route.shadows]:
                        if routed.name == plan.name:
                            routed.instances = [
                                i for i in routed.instances if i is not extra.endpoint
                            ]
                # Out of the route first, so it takes no new request; then its in-flight ones
                # finish before it stops.
                await self._drain_and_stop(extra)
            if route is not None:
                for routed in [*route.variants, *route.shadows]:
                    if routed.name == plan.name:
                        routed.weight = weight
        state = variant_state(endpoint, list(plans.values()))
        await self._settle(endpoint.name, None, state)

    async def _blue_green(self, endpoint: Resource) -> None:
        """UpdateEndpoint: bring the new config's instances up beside the old ones, move the
        traffic in one step, let the old instances finish what they are serving, then stop
        them. If the new config cannot become healthy, roll back: the old one keeps serving."""
        key = endpoint.name.lower()
        pending = endpoint.spec["Pending"]
        target = dataclasses.replace(endpoint, spec={**endpoint.spec, **pending})
        tasks: list[asyncio.Task[RunningInstance]] = []
        try:
            plans = await asyncio.to_thread(self.deployer.plan, target)
            async with asyncio.TaskGroup() as group:
                for plan in plans:
                    for index in range(plan.instance_count):
                        start = self._start_instance(endpoint.name, plan, index)
                        tasks.append(group.create_task(start))
            fresh = [task.result() for task in tasks]
            await self.serverless.prepare(endpoint.name, plans)
            await self.multi_model.prepare(endpoint.name, plans)
        except BaseException as failure:
            reason = _reason(failure)
            log.warning("update of %s rolled back: %s", endpoint.name, reason)
            started = [
                t.result() for t in tasks if t.done() and not t.cancelled() and not t.exception()
            ]
            await asyncio.gather(*(self.deployer.stop_instance(i) for i in started))
            await self.serverless.discard_pending(key)
            await self.multi_model.discard_pending(key)
            if isinstance(failure, asyncio.CancelledError):
                raise
            spec = {k: v for k, v in endpoint.spec.items() if k != "Pending"}
            state = {**endpoint.state, "FailureReason": f"Update rolled back: {reason}"[:1024]}
            await self._settle(endpoint.name, spec, state)
            return
        old = self._running.get(key, [])
        self._running[key] = fresh
        self._plans[key] = {plan.name: plan for plan in plans}
        self._install_route(endpoint.name, plans, pending["Config"])
        await asyncio.gather(*(self._drain_and_stop(instance) for instance in old))
        spec = {**{k: v for k, v in endpoint.spec.items() if k != "Pending"}, **pending}
        await self._settle(endpoint.name, spec, variant_state(target, plans))
        log.info("endpoint %s now serves %s", endpoint.name, pending["EndpointConfigName"])

    async def _settle(self, name: str, spec: dict[str, Any] | None, state: dict[str, Any]) -> None:
        """An update is over: record the endpoint InService with what it now serves."""
        await asyncio.to_thread(
            self.repository.update,
            ENDPOINT.key,
            name,
            spec=spec,
            status=IN_SERVICE,
            state=state,
            expect_status=(UPDATING,),
        )
        route = self.router.route(name)
        if route is not None:
            route.status = IN_SERVICE
        self._changed()

    async def _drain_and_stop(self, instance: RunningInstance, timeout: float = 60.0) -> None:
        """Stop an instance once the requests it is serving have finished."""
        instance.endpoint.healthy = False
        deadline = asyncio.get_running_loop().time() + timeout
        while instance.endpoint.outstanding and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        await self.deployer.stop_instance(instance)

    async def _stop_leftovers(self, endpoint: Resource) -> None:
        await self._stop_all(endpoint.name.lower())

    async def _tear_down(self, endpoint: Resource) -> None:
        key = endpoint.name.lower()
        await self.router.remove_route(endpoint.name)
        await self._stop_all(key)
        self._plans.pop(key, None)
        await asyncio.to_thread(self.repository.delete, ENDPOINT.key, endpoint.name)
        await self.router.remove_route(endpoint.name)
        log.info("endpoint %s deleted", endpoint.name)
        self._changed()

    async def _stop_all(self, key: str) -> None:
        instances = self._running.pop(key, [])
        await asyncio.gather(*(self.deployer.stop_instance(i) for i in instances))
        await self.serverless.close(key)
        await self.multi_model.close(key)


def _reason(failure: BaseException) -> str:
    if isinstance(failure, BaseExceptionGroup):
        failure = failure.exceptions[0]
    if isinstance(failure, SabioError):
        return failure.message
    return str(failure) or type(failure).__name__
