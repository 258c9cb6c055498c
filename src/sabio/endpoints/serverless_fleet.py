"""The serverless variants of every endpoint: their pools (`sabio.endpoints.serverless`) by
endpoint, and the pre-warmed parents (`sabio.serving.prewarm`) their cold starts fork from."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

from sabio.compute.local import LocalBackend, WorkUnit
from sabio.endpoints.deployment import Deployer, VariantPlan
from sabio.endpoints.serverless import ServerlessPolicy, ServerlessPool
from sabio.serving.forked_workers import PrewarmParent
from sabio.serving.router import Variant

log = logging.getLogger("sabio.endpoints.serverless")

_PARENT_START_TIMEOUT = 120.0


class Prewarmer:
    """The pre-warmed parents, one per interpreter, started on first use and kept until the
    server stops."""

    def __init__(self, deployer: Deployer, backend: LocalBackend) -> None:
        self.deployer = deployer
        self.backend = backend
        self._parents: dict[Path, PrewarmParent] = {}
        self._locks: dict[Path, asyncio.Lock] = {}

    async def parent(self, python: Path) -> PrewarmParent | None:
        """A ready parent for `python`, or None when none can run (workers then start
        afresh)."""
        lock = self._locks.setdefault(python, asyncio.Lock())
        async with lock:
            parent = self._parents.get(python)
            if parent is not None and parent.alive:
                return parent
            if parent is not None:
                await parent.stop(0)
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
            except RuntimeError as exc:
                log.warning("no pre-warmed parent for %s (%s); see %s", python, exc, logs)
                await parent.stop(0)
                return None
            self._parents[python] = parent
            return parent

    async def close(self) -> None:
        parents = list(self._parents.values())
        self._parents.clear()
        await asyncio.gather(*(p.stop(self.deployer.stop_grace) for p in parents))


class ServerlessFleet:
    """Every serverless variant's pool, by endpoint, and the pre-warmed parents they share."""

    def __init__(
        self,
        deployer: Deployer,
        *,
        idle_seconds: float,
        max_workers: int,
        prewarm: bool = True,
    ) -> None:
        self.deployer = deployer
        self.idle_seconds = idle_seconds
        self.max_workers = max_workers
        self.prewarmer = Prewarmer(deployer, deployer.backend) if prewarm else None
        self._pools: dict[str, dict[str, ServerlessPool]] = {}
        self._pending: dict[str, dict[str, ServerlessPool]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    async def prepare(self, endpoint: str, plans: list[VariantPlan]) -> None:
        """Pools for the serverless variants of `plans`, with their provisioned workers up,
        ready for `bind` once the route is installed."""
        key = endpoint.lower()
        await self.discard_pending(key)
        pools: dict[str, ServerlessPool] = {}
        self._pending[key] = pools
        for plan in plans:
            if plan.serverless is None:
                continue
            policy = ServerlessPolicy.from_config(
                plan.serverless, self.idle_seconds, self.max_workers
            )
            pools[plan.name] = ServerlessPool(endpoint, plan, policy, self.deployer, self.prewarmer)
        await asyncio.gather(*(pool.start_provisioned() for pool in pools.values()))

    def bind(self, endpoint: str, variants: list[Variant]) -> None:
        """The route now serves `variants`: the prepared pools gate them; pools they replace
        are stopped once their requests are answered."""
        key = endpoint.lower()
        pools = self._pending.pop(key, None)
        if pools is None:
            return
        old = self._pools.pop(key, {})
        self._pools[key] = pools
        for variant in variants:
            pool = pools.get(variant.name)
            if pool is not None:
                pool.bind(variant)
        for pool in old.values():
            task = asyncio.create_task(pool.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def tick(self, endpoint: str) -> None:
        for pool in list(self._pools.get(endpoint.lower(), {}).values()):
            await pool.tick()

    async def discard_pending(self, key: str) -> None:
        pools = self._pending.pop(key.lower(), {})
        await asyncio.gather(*(pool.close() for pool in pools.values()))

    async def close(self, key: str) -> None:
        key = key.lower()
        pools = [*self._pools.pop(key, {}).values(), *self._pending.pop(key, {}).values()]
        await asyncio.gather(*(pool.close() for pool in pools))

    async def shutdown(self) -> None:
        for key in {*self._pools, *self._pending}:
            await self.close(key)
        await asyncio.gather(*self._closing, return_exceptions=True)
        if self.prewarmer is not None:
            await self.prewarmer.close()
