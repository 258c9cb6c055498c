"""Sending one mini-batch to a model worker: retries, timeouts, and naming the record of a
failed mini-batch that fails on its own.

A request that fails with a 5xx, a 429, a timeout or a broken connection is retried
(`InvocationsMaxRetries`); a 4xx is not. A request whose worker exited goes to the worker's
replacement; if that one exits too, the request is taken to crash the model and fails. When a
mini-batch of several records still fails with an answer, it is bisected (one attempt per
half) to name the first record that fails on its own.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from sabio.artifacts.store import ArtifactStore
from sabio.transform.inputs import InputObject
from sabio.transform.options import Options
from sabio.transform.pool import Pool, Worker
from sabio.transform.reading import open_input
from sabio.transform.records import MB, Batch, Framing

log = logging.getLogger("sabio.transform")

_MESSAGE_CHARS = 400
_CRASHES = 2  # worker exits a request may see before it is taken to crash the model


@dataclass
class Response:
    body: bytes
    content_type: str | None


@dataclass
class Failure:
    kind: str  # "status", "timeout", "connection" or "crash" (the worker exited)
    message: str
    status: int = 0
    attempts: int = 1

    @property
    def retryable(self) -> bool:
        return self.kind != "status" or self.status >= 500 or self.status == 429

    def describe(self, timeout: float) -> str:
        if self.kind == "status":
            text = f"the model answered {self.status}: {self.message}"
        elif self.kind == "crash":
            text = f"the model worker exited while transforming it ({self.message})"
        elif self.kind == "timeout":
            text = f"no answer within InvocationsTimeoutInSeconds ({timeout:g} s)"
        else:
            text = f"the connection to the model worker failed ({self.message})"
        if self.attempts > 1:
            text += f" (after {self.attempts} attempts)"
        return text


def _one_line(data: bytes) -> str:
    text = " ".join(data.decode("utf-8", "replace").split())
    return text if len(text) <= _MESSAGE_CHARS else text[:_MESSAGE_CHARS] + "..."


class Invoker:
    """Posts request bodies to the pool's workers. Safe only within one event loop."""

    def __init__(self, pool: Pool, store: ArtifactStore, options: Options) -> None:
        self.pool = pool
        self.store = store
        self.options = options
        self.headers: dict[str, str] = {}
        if options.content_type:
            self.headers["Content-Type"] = options.content_type
        if options.accept:
            self.headers["Accept"] = options.accept
        self.timeout = aiohttp.ClientTimeout(total=options.timeout)

    async def invoke(
        self, body: bytes, streamed: InputObject | None, attempts: int
    ) -> Response | Failure:
        """`body`, or the whole of `streamed` when given, answered or failed for good.

        A request whose worker exited is sent again to the worker's replacement without using
        up `attempts`; the second exit while it is in flight fails it (it crashes the model)."""
        crashes: list[str] = []
        attempt = 0
        while True:
            result = await self.invoke_once(body, streamed)
            if isinstance(result, Response):
                return result
            if result.kind == "crash":
                crashes.append(result.message)
                if len(crashes) < _CRASHES:
                    continue
                result.message = ", then ".join(crashes)
                return result
            attempt += 1
            result.attempts = attempt
            if not result.retryable or attempt >= attempts:
                return result
            await asyncio.sleep(min(0.2 * 2 ** (attempt - 1), 2.0))

    async def invoke_once(self, body: bytes, streamed: InputObject | None) -> Response | Failure:
        worker = await self.pool.acquire()
        try:
            assert worker.session is not None
            # BytesIO, not bytes: aiohttp sends it in chunks (and warns about large bytes).
            data: io.BytesIO | AsyncIterator[bytes] = (
                self._stream_body(streamed) if streamed is not None else io.BytesIO(body)
            )
            async with worker.session.post(
                "http://worker/invocations",
                data=data,
                headers=self.headers,
                timeout=self.timeout,
            ) as response:
                payload = await response.read()
                if response.status < 400:
                    return Response(payload, response.headers.get("Content-Type"))
                return Failure("status", _one_line(payload), status=response.status)
        except TimeoutError:
            return Failure("timeout", "")
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            if await self._exited(worker):
                code = worker.returncode()
                log.warning("model worker %s exited with code %s in a transform", worker.name, code)
                self.pool.mark_dead(worker)
                return Failure("crash", f"{worker.name} with code {code}")
            return Failure("connection", f"{worker.name}: {type(exc).__name__}")
        finally:
            self.pool.release(worker)

    @staticmethod
    async def _exited(worker: Worker) -> bool:
        """Whether a worker whose connection broke has exited (its exit may take a moment to
        be seen after the socket closes)."""
        for _ in range(50):
            if not worker.alive():
                return True
            await asyncio.sleep(0.02)
        return False

    async def _stream_body(self, obj: InputObject) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        compression = self.options.compression
        stream = await loop.run_in_executor(None, open_input, self.store, obj, compression)
        try:
            while chunk := await loop.run_in_executor(None, stream.read, MB):
                yield chunk
        finally:
            await loop.run_in_executor(None, stream.close)

    async def locate(self, batch: Batch, failure: Failure) -> tuple[str, Failure]:
        """Which record of a failed mini-batch fails on its own: bisect it, one attempt per
        half. Falls back to the mini-batch's range when no half fails alone."""
        if batch.count < 2 or failure.kind != "status":
            return batch.describe(), failure
        framing = Framing(self.options.split_type)
        pieces = framing.pieces(batch.body)
        if len(pieces) != batch.count:
            return batch.describe(), failure
        low, high = 0, len(pieces)
        found = failure
        while high - low > 1:
            middle = (low + high) // 2
            first = await self.invoke_once(framing.join(pieces[low:middle]), None)
            if isinstance(first, Failure):
                high, found = middle, first
                continue
            second = await self.invoke_once(framing.join(pieces[middle:high]), None)
            if isinstance(second, Failure):
                low, found = middle, second
                continue
            return batch.describe(), failure
        return f"{batch.unit} {batch.location(low)}", found
