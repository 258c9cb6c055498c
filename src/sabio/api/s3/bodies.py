"""Streaming object bodies between the socket and the store, never holding an object whole.

Uploads are received on the event loop and written (and hashed) on the gateway's threads one
block at a time, the next block being received while the previous one is written. Downloads
read the next chunk on a thread while the current one is sent."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Callable, Iterator

from sabio.api.s3.checksums import BodyVerifier
from sabio.api.s3.chunked import AwsChunkedDecoder
from sabio.api.s3.errors import EntityTooLargeError, IncompleteBodyError, InvalidArgumentError
from sabio.api.s3.wire import S3Request, base_headers, encode_headers
from sabio.artifacts.store import ObjectReader

BLOCK = 1024 * 1024
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

    async def pump(self, sink: Callable[[bytes], None]) -> dict[str, str]:
        """Send the body to `sink` on a gateway thread; return the verified checksums.

        Raises IncompleteBody if the client stops early (nothing must be committed then)."""
        request = self.request
        writer = _SerialSink(request, self._absorb, sink)
        block: list[bytes] = []
        block_size = total = 0
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
                    block.append(data)
                    block_size += len(data)
                if block and (block_size >= BLOCK or not more):
                    await writer.put(block[0] if len(block) == 1 else b"".join(block))
                    block, block_size = [], 0
                if not more:
                    break
            request.body_consumed = True
        finally:
            await writer.close()  # never leave a thread writing while the caller aborts
        trailers = self.decoder.finish() if self.decoder is not None else {}
        if self.size is not None and total != self.size:
            raise IncompleteBodyError(
                "You did not provide the number of bytes specified by the Content-Length HTTP "
                "header."
            )
        self.verifier.expect(trailers)
        return self.verifier.verify()

    def _absorb(self, sink: Callable[[bytes], None], data: bytes) -> None:
        self.verifier.update(data)
        sink(data)


class _SerialSink:
    """Hands blocks, in order, to one gateway thread, with up to `depth` blocks waiting: the
    next blocks are received while earlier ones are hashed and written, and a slow disk
    holds the client back (TCP flow control) instead of filling memory."""

    def __init__(
        self,
        request: S3Request,
        absorb: Callable[[Callable[[bytes], None], bytes], None],
        sink: Callable[[bytes], None],
        depth: int = 8,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._slots = asyncio.Semaphore(depth)
        self._absorb, self._sink = absorb, sink
        self._error: BaseException | None = None
        self._done = request.run(self._consume)

    def _consume(self) -> None:
        while (block := self._queue.get()) is not None:
            try:
                if self._error is None:
                    self._absorb(self._sink, block)
            except BaseException as error:  # reported by put() and close()
                self._error = error
            finally:
                self._loop.call_soon_threadsafe(self._slots.release)

    async def put(self, block: bytes) -> None:
        if self._error is not None:
            raise self._error
        await self._slots.acquire()
        self._queue.put(block)

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
