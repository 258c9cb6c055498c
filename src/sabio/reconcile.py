"""The loop every controller runs: reconcile now, then again when woken or after an interval."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging

log = logging.getLogger("sabio.controllers")


class ReconcileLoop(abc.ABC):
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None

    @abc.abstractmethod
    async def reconcile(self) -> None:
        """Bring the world one step closer to the recorded desired state."""

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._main = asyncio.create_task(self._loop_forever(), name=type(self).__name__)

    def notify(self) -> None:
        """Wake the loop; safe to call from any thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def stop_loop(self) -> None:
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._main
            self._main = None

    async def _loop_forever(self) -> None:
        while True:
            try:
                await self.reconcile()
            except Exception:
                log.exception("%s: reconciliation failed; retrying", type(self).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
