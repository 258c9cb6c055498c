"""Responses that a handler produces piece by piece.

A `predict_fn`, `output_fn` or `transform_fn` that returns a generator, an iterator or an async
generator is streamed with chunked transfer encoding, one HTTP chunk per item, each sent as soon
as it is produced: this is the container side of InvokeEndpointWithResponseStream. A synchronous
iterator is advanced in a thread so that a slow model does not stall the worker's event loop
(pings keep answering). A failure after the first chunk cannot change the status any more, so
the connection is closed without the terminating chunk, which is how a SageMaker container
reports a broken stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from typing import Any

logger = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
_END = object()


def is_stream(value: Any) -> bool:
    """Whether a handler's result is a sequence of chunks rather than one body."""
    if isinstance(value, bytes | bytearray | memoryview | str):
        return False
    return isinstance(value, Iterator | AsyncIterator)


class Chunks:
    """A streamed body: the handler's iterator and how each item becomes bytes."""

    __slots__ = ("encode", "items", "source")

    def __init__(
        self, items: Iterator[Any] | AsyncIterator[Any], source: str, encode: Callable[[Any], bytes]
    ) -> None:
        self.items = items
        self.source = source
        self.encode = encode

    async def next_chunk(self) -> bytes | None:
        """The next non-empty piece, or None at the end."""
        items = self.items
        while True:
            if isinstance(items, AsyncIterator):
                try:
                    item = await items.__anext__()
                except StopAsyncIteration:
                    return None
            else:
                item = await asyncio.to_thread(next, items, _END)
                if item is _END:
                    return None
            data = self.encode(item)
            if data:
                return data

    async def close(self) -> None:
        items = self.items
        try:
            if isinstance(items, AsyncIterator):
                closer = getattr(items, "aclose", None)
                if closer is not None:
                    await closer()
            else:
                closer = getattr(items, "close", None)
                if closer is not None:
                    closer()
        except Exception:
            logger.exception("Closing the response stream of %s failed", self.source)


async def send_chunks(
    send: Send,
    chunks: Chunks,
    headers: list[tuple[bytes, bytes]],
    on_error: Callable[[Exception], Awaitable[None]],
) -> None:
    """Send `chunks` as a chunked 200 response.

    A failure before the first chunk goes to `on_error`, which still answers with an error
    status; a later one is logged and the response is cut off."""
    started = False
    try:
        while True:
            data = await chunks.next_chunk()
            if not started:
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                started = True
            if data is None:
                break
            await send({"type": "http.response.body", "body": data, "more_body": True})
    except Exception as exc:
        await chunks.close()
        if not started:
            await on_error(exc)
            return
        logger.error("%s failed while streaming its response: %s", chunks.source, exc)
        raise
    await send({"type": "http.response.body", "body": b"", "more_body": False})
