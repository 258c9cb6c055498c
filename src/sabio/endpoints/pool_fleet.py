"""Variant pools by endpoint, for the kinds of variant that keep their own workers
(serverless and multi-model): a new configuration's pools are prepared, then bound once its
route is installed, and the pools they replace close when their requests are answered."""

from __future__ import annotations

import asyncio
from typing import Generic, Protocol, TypeVar

from sabio.serving.router import Variant


class Pool(Protocol):
    def bind(self, variant: Variant) -> None: ...

    async def close(self) -> None: ...


P = TypeVar("P", bound=Pool)


class PoolFleet(Generic[P]):
    """The pools of every endpoint, by lower-cased endpoint name and variant name."""

    def __init__(self) -> None:
        self._pools: dict[str, dict[str, P]] = {}
        self._pending: dict[str, dict[str, P]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def pool(self, endpoint: str, variant: str) -> P | None:
        return self._pools.get(endpoint.lower(), {}).get(variant)

    def pools(self, endpoint: str) -> list[P]:
        return list(self._pools.get(endpoint.lower(), {}).values())

    async def _begin(self, endpoint: str, pools: dict[str, P]) -> None:
        """`pools` wait for `bind`; pools prepared earlier and never bound are closed."""
        key = endpoint.lower()
        await self.discard_pending(key)
        self._pending[key] = pools

    def bind(self, endpoint: str, variants: list[Variant]) -> None:
        """The route now serves `variants`: the prepared pools serve them; pools they replace
        stop once their requests are answered."""
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
