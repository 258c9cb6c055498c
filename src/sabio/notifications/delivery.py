"""Delivering SNS messages to HTTP(S) subscribers in the background, with retries.

Each message to each subscription is one asyncio task: POST, and on a connection error, a
timeout, a 5xx or a 429, wait (exponential back-off, capped) and try again, up to the
configured number of attempts. Before every attempt the task asks whether the subscription
still wants the message, so Unsubscribe and DeleteTopic stop retries as well as new
deliveries. Pending deliveries live in memory: a restart drops the ones not yet made."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from sabio.notifications.messages import Outgoing

log = logging.getLogger("sabio.notifications")

# Whether a subscription still wants a message of this type (exists, confirmed or pending).
StillWanted = Callable[[str, str], Awaitable[bool]]

_MAX_CONCURRENT = 32


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int
    base_delay: float
    max_delay: float
    timeout: float

    def delay(self, failed_attempts: int) -> float:
        return float(min(self.max_delay, self.base_delay * 2 ** (failed_attempts - 1)))


class DeliveryEngine:
    def __init__(self, policy: RetryPolicy, still_wanted: StillWanted) -> None:
        self.policy = policy
        self.still_wanted = still_wanted
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(_MAX_CONCURRENT)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.policy.timeout)
        )

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def submit(self, outgoing: Outgoing) -> None:
        """Start delivering in the background; returns at once. Safe from any thread."""
        if self._loop is None:
            raise RuntimeError("the delivery engine is not started")
        self._loop.call_soon_threadsafe(self._spawn, outgoing)

    def _spawn(self, outgoing: Outgoing) -> None:
        if self._session is None:
            return
        task = asyncio.get_running_loop().create_task(self._deliver(outgoing))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def _deliver(self, outgoing: Outgoing) -> None:
        target = redact(outgoing.url)
        for attempt in range(1, self.policy.attempts + 1):
            if not await self.still_wanted(outgoing.subscription_arn, outgoing.message_type):
                log.info("dropped %s to %s: no longer subscribed", outgoing.message_type, target)
                return
            outcome = await self._attempt(outgoing)
            if outcome is None:
                return
            if outcome.startswith("rejected"):
                log.warning("%s to %s %s; not retried", outgoing.message_type, target, outcome)
                return
            if attempt == self.policy.attempts:
                log.warning(
                    "gave up on %s to %s after %d attempts: %s",
                    outgoing.message_type, target, attempt, outcome,
                )  # fmt: skip
                return
            delay = self.policy.delay(attempt)
            log.info("%s to %s failed (%s); retrying in %.1fs", outgoing.message_type, target,
                     outcome, delay)  # fmt: skip
            await asyncio.sleep(delay)

    async def _attempt(self, outgoing: Outgoing) -> str | None:
        """None when delivered; else what went wrong (`rejected ...` when not worth a retry)."""
        if self._session is None:
            raise RuntimeError("the delivery engine is not started")
        async with self._slots:
            try:
                async with self._session.post(
                    outgoing.url,
                    data=outgoing.body,
                    headers=outgoing.headers,
                    allow_redirects=False,
                ) as response:
                    await response.read()
                    status = response.status
            except TimeoutError:
                return "timed out"
            except aiohttp.ClientError as exc:
                return f"{type(exc).__name__}"
        if status < 400:
            return None
        if status >= 500 or status == 429:
            return f"status {status}"
        return f"rejected with status {status}"


def redact(url: str) -> str:
    """The URL without any user:password (HTTP basic credentials never reach the logs)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
