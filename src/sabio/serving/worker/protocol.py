"""The worker's HTTP protocol: uvicorn's httptools protocol, with each response's head and
first body bytes sent in one write.

uvicorn writes the status line and headers, then the body, as two writes: two system calls
here, and two wake-ups and reads for the router on the other end of the socket, for every
invocation. Holding the head until the body follows makes that one of each.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_CONTINUE = b"HTTP/1.1 100 "
_LARGE = 65536


class _HeldHeadTransport:
    """A transport that keeps the next write (a response head) until the one after it."""

    __slots__ = ("_held", "_transport", "hold")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None
        self.hold = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if len(data) < _LARGE:
                self._transport.write(held + bytes(data))
            else:
                self._transport.writelines((held, data))
        elif self.hold and bytes(data[:13]) != _CONTINUE:
            self.hold = False
            self._held = bytes(data)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's protocol on a transport that joins each response's head to its body."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        held = _HeldHeadTransport(cast(asyncio.Transport, transport))
        super().connection_made(cast(asyncio.Transport, held))

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        transport: Any = self.transport
        transport.hold = True

    def on_response_complete(self) -> None:
        transport: Any = self.transport
        transport.flush()
        super().on_response_complete()
