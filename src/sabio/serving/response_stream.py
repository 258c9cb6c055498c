"""Streaming an invocation's response from a worker, one HTTP chunk at a time.

This is the router's half of InvokeEndpointWithResponseStream: the worker answers with chunked
transfer encoding and every chunk becomes one part as soon as it arrives. Errors before the
worker's status line are ordinary runtime errors (raised by `open_stream`); errors after it
can only end the stream, so they are yielded as a `StreamFailure` with SageMaker's
`ModelStreamError` codes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

from sabio.serving.capture import CaptureWriter
from sabio.serving.worker_errors import model_error, timed_out, worker_lost

if TYPE_CHECKING:
    from sabio.serving.router import Route, Variant


@dataclass(frozen=True)
class StreamFailure:
    """Why a stream ended early: `ModelInvocationTimeExceeded` or `StreamBroken`."""

    code: str
    message: str


@dataclass
class ResponseStream:
    """A started response: its headers, and its parts (bytes, then maybe one failure).

    Iterate `parts` to the end or call `close`, so the instance is released."""

    variant: str
    content_type: str
    custom_attributes: str | None
    parts: AsyncIterator[bytes | StreamFailure]
    _release: Callable[[], None] = field(repr=False, default=lambda: None)

    async def close(self) -> None:
        closer = getattr(self.parts, "aclose", None)
        if closer is not None:
            await closer()
        self._release()


async def open_stream(
    route: Route,
    variant: Variant,
    body: bytes,
    forwarded: Mapping[str, str],
    timeout: aiohttp.ClientTimeout,
    capture: CaptureWriter | None,
    started: int,
) -> ResponseStream:
    """Send the request to an instance of `variant` and wait for the worker's status line.

    The instance counts as busy, and the invocation is recorded in the variant's metrics,
    until the stream is consumed or closed."""
    instance = await variant.acquire(route.name)
    sent = time.perf_counter_ns()
    status = 0
    finished = False

    def finish(answered: int) -> None:
        nonlocal finished
        if finished:
            return
        finished = True
        variant.release(instance, status, started, sent, answered)

    try:
        response = await instance.client().post(
            "http://worker/invocations", data=body, headers=forwarded, timeout=timeout
        )
    except TimeoutError:
        finish(0)
        raise timed_out(variant.name, route.log_group) from None
    except aiohttp.ClientError as exc:
        instance.healthy = False
        finish(0)
        raise worker_lost(variant.name, exc, route.log_group) from None
    except BaseException:
        finish(0)
        raise
    status = response.status
    if status >= 400:
        try:
            payload = await response.read()
        except (aiohttp.ClientError, TimeoutError):
            payload = b""
        finally:
            response.release()
            finish(time.perf_counter_ns())
        raise model_error(status, payload, route.log_group)
    content_type = response.headers.get("Content-Type", "application/octet-stream")
    policy = route.capture
    record = policy is not None and capture is not None and policy.sampled()

    def release() -> None:
        response.release()
        finish(time.perf_counter_ns())

    async def parts() -> AsyncIterator[bytes | StreamFailure]:
        nonlocal status
        pending: list[bytes] = []
        captured: list[bytes] = []
        try:
            async for data, end_of_chunk in response.content.iter_chunks():
                pending.append(data)
                if end_of_chunk or not data:
                    part = b"".join(pending)
                    pending.clear()
                    if part:
                        if record:
                            captured.append(part)
                        yield part
            if pending and (part := b"".join(pending)):
                if record:
                    captured.append(part)
                yield part
        except TimeoutError:
            status = 0
            yield StreamFailure(
                "ModelInvocationTimeExceeded",
                f"The model of variant {variant.name} did not finish its response within "
                "the invocation timeout.",
            )
            return
        except aiohttp.ClientError as exc:
            status = 0
            yield StreamFailure(
                "StreamBroken",
                f"The model of variant {variant.name} closed its response stream before "
                f"the end ({type(exc).__name__}). See the log group {route.log_group} for "
                "more information.",
            )
            return
        finally:
            release()
        if record and capture is not None and policy is not None:
            capture.add_exchange(
                route.name, variant.name, policy, body, forwarded, b"".join(captured), content_type
            )

    return ResponseStream(
        variant.name,
        content_type,
        response.headers.get("X-Amzn-SageMaker-Custom-Attributes"),
        parts(),
        release,
    )
