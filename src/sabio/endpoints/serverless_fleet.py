"""The serverless variants of every endpoint: their pools (`sabio.endpoints.serverless`) by
endpoint. Their cold starts fork from the pre-warmed parents the real-time instances share
(`sabio.endpoints.prewarm_fleet`)."""

from __future__ import annotations

import asyncio

from sabio.endpoints.deployment import Deployer, VariantPlan
from sabio.endpoints.pool_fleet import PoolFleet
from sabio.endpoints.prewarm_fleet import Prewarmer
from sabio.endpoints.serverless import ServerlessPolicy, ServerlessPool


class ServerlessFleet(PoolFleet[ServerlessPool]):
    """Every serverless variant's pool, by endpoint."""

    def __init__(
        self,
        deployer: Deployer,
        *,
        idle_seconds: float,
        max_workers: int,
        prewarmer: Prewarmer | None = None,
    ) -> None:
        super().__init__()
        self.deployer = deployer
        self.idle_seconds = idle_seconds
        self.max_workers = max_workers
        self.prewarmer = prewarmer

    async def prepare(self, endpoint: str, plans: list[VariantPlan]) -> None:
        """Pools for the serverless variants of `plans`, with their provisioned workers up,
        ready for `bind` once the route is installed."""
        pools: dict[str, ServerlessPool] = {}
        await self._begin(endpoint, pools)
        for plan in plans:
            if plan.serverless is None:
                continue
            policy = ServerlessPolicy.from_config(
                plan.serverless, self.idle_seconds, self.max_workers
            )
            pools[plan.name] = ServerlessPool(endpoint, plan, policy, self.deployer, self.prewarmer)
        await asyncio.gather(*(pool.start_provisioned() for pool in pools.values()))

    async def resize(self, endpoint: str, plan: VariantPlan) -> None:
        """The variant of `plan` takes its new ServerlessConfig in place; raises
        DeploymentError if new provisioned workers cannot start."""
        pool = self.pool(endpoint, plan.name)
        if pool is None or plan.serverless is None:
            return
        policy = ServerlessPolicy.from_config(plan.serverless, self.idle_seconds, self.max_workers)
        await pool.resize(plan, policy)

    async def tick(self, endpoint: str) -> None:
        for pool in self.pools(endpoint):
            await pool.tick()
