"""The loop every controller runs: reconcile now, then again when woken or after an interval.

One server owns the store, and every change made through its API wakes the controller that
acts on it (`notify`). So a pass need not read the store unless something changed since the
last read: `must_read` says when. An idle server then does no periodic store reads, which on a
busy endpoint is what keeps them (and the worker threads that run them, holding the GIL) from
landing in the middle of invocations. A read every `refresh_seconds` stays as a safety net.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable

log = logging.getLogger("sabio.controllers")


class ReconcileLoop(abc.ABC):
    refresh_seconds = 30.0
    """The longest a pass trusts what it last read from the store without a change notice."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stale = True
        self._read_at = float("-inf")
        self.reads = 0
        """Passes that read the store (`must_read` answered True)."""
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
        """Note a change and wake the loop; safe to call from any thread."""
        self._stale = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    def must_read(self) -> bool:
        """Whether this pass must read the store: something changed since the last read (a
        `notify`), or that read is older than `refresh_seconds`. Answering True counts as the
        read: a change noticed while it runs sets the flag again, for the next pass."""
        now = time.monotonic()
        if self._stale or now - self._read_at >= self.refresh_seconds:
            self._stale = False
            self._read_at = now
            self.reads += 1
            return True
        return False

    def notify_when_done(self, task: asyncio.Task[None]) -> asyncio.Task[None]:
        """`notify` when `task` ends: whatever it changed is read on the next pass, at once."""
        task.add_done_callback(lambda _: self.notify())
        return task

    async def stop_loop(self) -> None:
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._main
            self._main = None

    def watching(self) -> bool:
        """Whether to pass again after `interval` when nothing wakes the loop. A loop with
        nothing to watch (the asynchronous dispatcher with no asynchronous endpoint) answers
        False and sleeps until `notify`; a failed pass is always retried after `interval`."""
        return True

    async def _loop_forever(self) -> None:
        while True:
            failed = False
            try:
                await self.reconcile()
            except Exception:
                log.exception("%s: reconciliation failed; retrying", type(self).__name__)
                failed = True
            timeout = self.interval if failed or self.watching() else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()


class StoreReads:
    """The controllers' store reads as one `/metrics` counter: it stays flat while nothing
    changes, however many endpoints serve."""

    name = "sabio_controller_store_reads_total"
    help = "Controller passes that read the metadata store; they read only after a change."

    def __init__(self, loops: Iterable[ReconcileLoop]) -> None:
        self.loops = list(loops)

    def value(self) -> int:
        return sum(loop.reads for loop in self.loops)
