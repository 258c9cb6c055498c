"""Streaming object bodies between the socket and the store, never holding an object whole.

Uploads are received on the event loop, gathered into pooled 1 MiB blocks, and written (and
hashed, every digest over the same block while it is in cache) on the gateway's threads one
block at a time, the next block being received while the previous one is written. Downloads
read the next chunk on a thread while the current one is sent."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Callable, Iterator

from sabio.api.s3.blocks import BLOCK
from sabio.api.s3.checksums import BodyVerifier
from sabio.api.s3.chunked import AwsChunkedDecoder
from sabio.api.s3.errors import EntityTooLargeError, IncompleteBodyError, InvalidArgumentError
from sabio.api.s3.wire import S3Request, base_headers, encode_headers
from sabio.artifacts.store import Chunk, ObjectReader

MAX_UPLOAD_BYTES = 5 * 1024**3  # S3's limit for one PutObject or UploadPart


class UploadBody:
    """The body of a PutObject or UploadPart: decoded if aws-chunked, checked as it streams."""

    def __init__(
        self,
        request: S3Request,
        max_bytes: int = MAX_UPLOAD_BYTES,
        checksum_algorithm: str | None = None,
    ) -> None:
        headers = request.headers
        self.request = request
        self.max_bytes = max_bytes
        encodings = [e.strip().lower() for e in headers.get("content-encoding", "").split(",")]
        sha256 = headers.get("x-amz-content-sha256", "")
        self.chunked = "aws-chunked" in encodings or sha256.startswith("STREAMING-")
        self.size = _size(
            headers.get("x-amz-decoded-content-length" if self.chunked else "content-length")
        )
        if self.size is not None and self.size > max_bytes:
            raise EntityTooLargeError(
                "Your proposed upload exceeds the maximum allowed size.",
                proposed_size=self.size,
                max_size_allowed=max_bytes,
            )
        trailer_names = frozenset(
            t.strip().lower() for t in headers.get("x-amz-trailer", "").split(",") if t.strip()
        )
        self.verifier = BodyVerifier(
            headers, trailer_names=trailer_names, algorithm=checksum_algorithm
        )
        self.decoder = AwsChunkedDecoder() if self.chunked else None

    async def pump(self, sink: Callable[[Chunk], None]) -> dict[str, str]:
        """Send the body to `sink` on a gateway thread; return the verified checksums.

        The sink may be handed a view of a pooled block that is reused once it returns: it
        must copy what it keeps. Raises IncompleteBody if the client stops early (nothing must
        be committed then)."""
        request = self.request
        writer = _SerialSink(request, self._absorb, sink)
        block: bytearray | None = None
        fill = total = 0
        try:
            while True:
                message = await request.receive()
                if message["type"] == "http.disconnect":
                    raise IncompleteBodyError(
                        "The client closed the connection before sending the whole body."
                    )
                data: bytes = message.get("body", b"")
                more = bool(message.get("more_body", False))
                if data and self.decoder is not None:
                    data = self.decoder.feed(data)
                if data:
                    total += len(data)
                    if total > self.max_bytes:
                        raise EntityTooLargeError(
                            "Your proposed upload exceeds the maximum allowed size."
                        )
                if data and block is None and (not more or len(data) >= BLOCK):
                    await writer.put(data, None)  # whole already: no copy
                    data = b""
                view = memoryview(data)
                while view:
                    if block is None:
                        block, fill = request.blocks.take(), 0
                    take = min(len(view), BLOCK - fill)
                    block[fill : fill + take] = view[:take]
                    fill += take
                    view = view[take:]
                    if fill == BLOCK:
                        full, block = block, None
                        await writer.put(full, full)
                if not more:
                    if block is not None:
                        last, block = block, None
                        await writer.put(memoryview(last)[:fill], last)
                    break
            request.body_consumed = True
        finally:
            if block is not None:
                request.blocks.give(block)
            await writer.close()  # never leave a thread writing while the caller aborts
        trailers = self.decoder.finish() if self.decoder is not None else {}
        if self.size is not None and total != self.size:
            raise IncompleteBodyError(
                "You did not provide the number of bytes specified by the Content-Length HTTP "
                "header."
            )
        self.verifier.expect(trailers)
        return self.verifier.verify()

    def _absorb(self, sink: Callable[[Chunk], None], data: Chunk) -> None:
        self.verifier.update(data)
        sink(data)


class _SerialSink:
    """Hands blocks, in order, to one gateway thread, with up to `depth` blocks waiting: the
    next blocks are received while earlier ones are hashed and written, and a slow disk
    holds the client back (TCP flow control) instead of filling memory. Pooled blocks go back
    to the pool once written."""

    def __init__(
        self,
        request: S3Request,
        absorb: Callable[[Callable[[Chunk], None], Chunk], None],
        sink: Callable[[Chunk], None],
        depth: int = 8,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: queue.SimpleQueue[tuple[Chunk, bytearray | None] | None] = queue.SimpleQueue()
        self._slots = asyncio.Semaphore(depth)
        self._absorb, self._sink = absorb, sink
        self._blocks = request.blocks
        self._error: BaseException | None = None
        self._done = request.run(self._consume)

    def _consume(self) -> None:
        while (item := self._queue.get()) is not None:
            data, block = item
            try:
                if self._error is None:
                    self._absorb(self._sink, data)
            except BaseException as error:  # reported by put() and close()
                self._error = error
            finally:
                if block is not None:
                    self._blocks.give(block)
                self._loop.call_soon_threadsafe(self._slots.release)

    async def put(self, data: Chunk, block: bytearray | None) -> None:
        """Queue `data`; `block` (the pooled buffer behind it, if any) is given back after."""
        if self._error is not None:
            if block is not None:
                self._blocks.give(block)
            raise self._error
        await self._slots.acquire()
        self._queue.put((data, block))

    async def close(self) -> None:
        self._queue.put(None)
        await self._done
        if self._error is not None:
            raise self._error


def _size(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.strip().isdigit():
        raise InvalidArgumentError(f"Invalid content length {value[:32]!r}.")
    return int(value)


async def send_object(
    request: S3Request,
    status: int,
    headers: list[tuple[str, str]],
    reader: ObjectReader,
    start: int,
    stop: int,
) -> None:
    """Answer with the bytes [start, stop) of an open object (none for HEAD)."""
    out = base_headers(request) + encode_headers(headers)
    out.append((b"content-length", str(stop - start).encode()))
    await request.send({"type": "http.response.start", "status": status, "headers": out})
    if request.method == "HEAD" or stop <= start:
        await request.send({"type": "http.response.body", "body": b""})
        return
    chunks: Iterator[bytes] = reader.chunks(start, stop)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        upcoming = request.run(next, chunks, None)
        while True:
            chunk = await upcoming
            if chunk is None:
                break
            upcoming = request.run(next, chunks, None)
            await request.send({"type": "http.response.body", "body": chunk, "more_body": True})
            if gone.done():
                await upcoming
                return
        await request.send({"type": "http.response.body", "body": b""})
    finally:
        gone.cancel()
        await request.run(getattr(chunks, "close", lambda: None))


async def _disconnected(request: S3Request) -> None:
    """Returns when the client goes away (the request body is already consumed)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def read_small(request: S3Request, limit: int) -> bytes:
    """A small request body (an XML document), with the same decoding and checks as uploads."""
    buffer = bytearray()
    await UploadBody(request, max_bytes=limit).pump(buffer.extend)
    return bytes(buffer)
