"""Shadow variants: a copy of production traffic for a model under test.

An endpoint config with `ShadowProductionVariants` has one production variant and one shadow
variant. The shadow's weight, relative to the production variant's, is the fraction of the
production variant's invocations that are also sent to the shadow (1 and 0.5: every other
request on average; a shadow weighing as much as production or more gets all of them). The
copy is sent from a background task after the production request was chosen, so it never
delays or fails the client's answer. Its response is recorded (the shadow variant's own
metrics and, when the endpoint captures data, its own capture files) and then dropped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import aiohttp

from sabio.serving.capture import CaptureWriter
from sabio.serving.upstream import UpstreamClosed

if TYPE_CHECKING:
    from sabio.serving.router import Route, Variant

log = logging.getLogger("sabio.serving")

# Copies still in flight; at most this many per shadow variant, further copies are dropped so a
# slow shadow cannot pile up work (or memory) behind production traffic.
MAX_IN_FLIGHT = 64


class Mirror:
    """Sends copies of production invocations to an endpoint's shadow variants."""

    def __init__(self, capture: CaptureWriter | None, timeout: aiohttp.ClientTimeout) -> None:
        self.capture = capture
        self.timeout = timeout
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight: dict[int, int] = {}

    def copy(
        self, route: Route, production: Variant, body: bytes, forwarded: Mapping[str, str]
    ) -> None:
        """Sample this invocation for each shadow variant and send the copies off the path."""
        for shadow in route.shadows:
            if production.weight <= 0:
                continue
            fraction = shadow.weight / production.weight
            if fraction <= 0 or (fraction < 1 and random.random() >= fraction):
                continue
            key = id(shadow)
            if self._in_flight.get(key, 0) >= MAX_IN_FLIGHT:
                continue
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            task = asyncio.create_task(self._send(route, shadow, body, dict(forwarded)))
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._done, key=key))

    def _done(self, task: asyncio.Task[None], key: int) -> None:
        self._tasks.discard(task)
        self._in_flight[key] -= 1
        if not self._in_flight[key]:
            del self._in_flight[key]

    async def _send(
        self, route: Route, shadow: Variant, body: bytes, forwarded: dict[str, str]
    ) -> None:
        instance = shadow.pick()
        if instance is None:
            return
        started = sent = time.perf_counter_ns()
        status = answered = 0
        instance.outstanding += 1
        try:
            limit = (shadow.timeout or self.timeout).total
            response = await instance.post(body, forwarded, limit)
            payload = response.body
            answered = time.perf_counter_ns()
            status = response.status
            content_type = response.headers.get("content-type", "application/json")
            policy = route.capture
            if (
                status < 400
                and policy is not None
                and self.capture is not None
                and policy.sampled()
            ):
                self.capture.add_exchange(
                    route.name, shadow.name, policy, body, forwarded, payload, content_type
                )
        except (UpstreamClosed, TimeoutError) as exc:
            log.debug("shadow variant %s of %s: %s", shadow.name, route.name, exc)
        except Exception:
            log.exception("copying an invocation to shadow variant %s failed", shadow.name)
        finally:
            instance.outstanding -= 1
            if shadow.metrics is not None:
                shadow.metrics.record(status, started, sent, answered, len(shadow.instances))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
