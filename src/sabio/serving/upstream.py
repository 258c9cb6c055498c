"""A lean HTTP/1.1 client for the router's hop to a model worker over its Unix socket.

Every invocation crosses this hop, so it is a bare asyncio protocol with the `httptools`
response parser and a small pool of keep-alive connections per worker: no client session,
no request or response objects beyond one small result, no thread hop. It speaks just what
the router needs (a POST with a body, a whole response back) and handles Content-Length,
chunked and close-delimited bodies.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import httptools


class UpstreamClosed(Exception):
    """The worker refused the connection, or closed it before a whole response arrived."""


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: dict[str, str]
    """Lower-case names; repeated headers are joined with ", "."""
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection; carries one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[UpstreamResponse] | None = None
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.headers_done = False
        self.framed = False  # Content-Length or chunked: the body does not end at EOF
        self.reusable = False
        self.closed = False
        self.idle_since = 0.0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamClosed(f"invalid response from the worker: {exc}"))
            self.abort()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.headers_done and not self.framed:
            self.on_message_complete()  # a body that the end of the connection delimits
            return
        self._fail(UpstreamClosed("the worker closed the connection without a whole response"))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        if key == "content-length" or (key == "transfer-encoding" and "chunked" in text.lower()):
            self.framed = True
        previous = self.headers.get(key)
        self.headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        waiter = self.waiter
        chunks = self.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        response = UpstreamResponse(self.parser.get_status_code(), self.headers, body)
        self.reusable = not self.closed and self.parser.should_keep_alive()
        self.waiter = None
        self.headers = {}
        self.chunks = []
        self.headers_done = self.framed = False
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    # use

    def send(self, head: bytes, body: bytes) -> asyncio.Future[UpstreamResponse]:
        assert self.transport is not None
        waiter = self.waiter = self.loop.create_future()
        self.reusable = False
        if len(body) <= 65536:
            self.transport.write(head + body)
        else:
            self.transport.writelines((head, body))
        return waiter

    def _fail(self, error: Exception) -> None:
        waiter = self.waiter
        self.waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def _request_head(target: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    lines = [f"POST {target} HTTP/1.1\r\nhost: worker\r\ncontent-length: {len(body)}\r\n"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"Newline or carriage return in the header {name!r}")
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


class UnixPool:
    """Keep-alive connections to one worker's Unix socket, reused most recent first.

    Idle connections are dropped after `idle_timeout` seconds, below the worker's own
    keep-alive timeout, so a request never lands on a connection the worker is closing."""

    def __init__(self, path: str, max_idle: int = 32, idle_timeout: float = 60.0) -> None:
        self.path = path
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self._idle: list[_Connection] = []
        self._closing = False

    async def post(
        self,
        target: str,
        body: bytes,
        headers: Mapping[str, str],
        timeout: float | None = None,
    ) -> UpstreamResponse:
        """Send one request and read its whole response.

        Raises TimeoutError after `timeout` seconds (connecting included) and
        UpstreamClosed when the worker cannot be reached or drops the connection."""
        if self._closing:
            raise UpstreamClosed("the connection pool is closed")
        head = _request_head(target, body, headers)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        connection = self._reuse()
        if connection is None:
            connection = await self._connect(loop, deadline)
        waiter = connection.send(head, body)
        expired = None
        if deadline is not None:
            expired = loop.call_at(deadline, _expire, connection, waiter)
        try:
            response = await waiter
        except BaseException:
            connection.abort()
            raise
        finally:
            if expired is not None:
                expired.cancel()
        self._release(connection)
        return response

    def _reuse(self) -> _Connection | None:
        idle = self._idle
        if not idle:
            return None
        oldest = time.monotonic() - self.idle_timeout
        while idle:
            connection = idle.pop()
            if not connection.closed and connection.idle_since > oldest:
                return connection
            connection.abort()
        return None

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, deadline: float | None
    ) -> _Connection:
        try:
            async with asyncio.timeout_at(deadline):
                _, connection = await loop.create_unix_connection(
                    lambda: _Connection(loop), self.path
                )
        except OSError as exc:
            if isinstance(exc, TimeoutError):
                raise
            raise UpstreamClosed(f"cannot connect to the worker: {exc.strerror or exc}") from None
        return connection

    def _release(self, connection: _Connection) -> None:
        if (
            connection.reusable
            and not connection.closed
            and not self._closing
            and len(self._idle) < self.max_idle
        ):
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.abort()

    @property
    def idle(self) -> int:
        """How many open connections wait for reuse."""
        return len(self._idle)

    def close(self) -> None:
        """Close the idle connections now; those in use close when their response is read."""
        self._closing = True
        while self._idle:
            self._idle.pop().abort()


def _expire(connection: _Connection, waiter: asyncio.Future[UpstreamResponse]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
    connection.abort()
