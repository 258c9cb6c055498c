"""The serverless variants of every endpoint: their pools (`sabio.endpoints.serverless`) by
endpoint. Their cold starts fork from the pre-warmed parents the real-time instances share
(`sabio.endpoints.prewarm_fleet`)."""

from __future__ import annotations

import asyncio

from sabio.endpoints.deployment import Deployer, VariantPlan
from sabio.endpoints.prewarm_fleet import Prewarmer
from sabio.endpoints.serverless import ServerlessPolicy, ServerlessPool
from sabio.serving.router import Variant


class ServerlessFleet:
    """Every serverless variant's pool, by endpoint."""

    def __init__(
        self,
        deployer: Deployer,
        *,
        idle_seconds: float,
        max_workers: int,
        prewarmer: Prewarmer | None = None,
    ) -> None:
        self.deployer = deployer
        self.idle_seconds = idle_seconds
        self.max_workers = max_workers
        self.prewarmer = prewarmer
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

    async def resize(self, endpoint: str, plan: VariantPlan) -> None:
        """The variant of `plan` takes its new ServerlessConfig in place; raises
        DeploymentError if new provisioned workers cannot start."""
        pool = self._pools.get(endpoint.lower(), {}).get(plan.name)
        if pool is None or plan.serverless is None:
            return
        policy = ServerlessPolicy.from_config(plan.serverless, self.idle_seconds, self.max_workers)
        await pool.resize(plan, policy)

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
