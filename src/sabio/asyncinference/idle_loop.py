"""A reconcile loop that sleeps for good while it has nothing to watch.

The controllers' `ReconcileLoop` wakes every interval whatever happens; the asynchronous
inference dispatcher would then poll the database twice a second on a server with no
asynchronous endpoint at all. This loop polls on its interval only while `watching()` says
there is something to watch, and otherwise waits until `notify` (new work, or an endpoint
appearing or going) wakes it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging

log = logging.getLogger("sabio.asyncinference")


class IdleLoop(abc.ABC):
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None

    @abc.abstractmethod
    async def reconcile(self) -> None:
        """One pass over the work."""

    @abc.abstractmethod
    def watching(self) -> bool:
        """Whether to look again after `interval` even if nothing wakes the loop."""

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._main = asyncio.create_task(self._run(), name=type(self).__name__)

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

    async def _run(self) -> None:
        while True:
            failed = False
            try:
                await self.reconcile()
            except Exception:
                log.exception("%s: a pass failed; retrying", type(self).__name__)
                failed = True
            timeout = self.interval if failed or self.watching() else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
