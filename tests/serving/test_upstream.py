"""The router's HTTP/1.1 client for workers, against a real HTTP server on a Unix socket.

The server here is a small asyncio one whose answer each test chooses through the request
path, so the client meets the response framings and failures a worker can produce."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from sabio.serving.upstream import UnixPool, UpstreamClosed

Answer = Callable[[asyncio.StreamWriter, str, dict[str, str], bytes], Awaitable[None]]


class Worker:
    """Reads whole requests, records them, and answers according to the request path."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                line, *fields = head.decode("latin-1").split("\r\n")[:-2]
                target = line.split(" ")[1]
                headers = {k.lower(): v.strip() for k, v in (f.split(":", 1) for f in fields)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((target, headers, body))
                if not await ANSWERS[target](writer, target, headers, body):
                    return
        finally:
            writer.close()


async def echo(writer: asyncio.StreamWriter, _: str, headers: dict[str, str], body: bytes) -> bool:
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
        b"x-amzn-sagemaker-custom-attributes: a=1\r\nx-amzn-sagemaker-custom-attributes: b=2\r\n"
        b"\r\n%s" % (headers.get("content-type", "none").encode(), len(body), body)
    )
    return True


async def chunked(writer: asyncio.StreamWriter, *_: object) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    for part in (b"hello, ", b"chunked ", b"world"):
        writer.write(b"%x\r\n%s\r\n" % (len(part), part))
        await writer.drain()
        await asyncio.sleep(0.01)
    writer.write(b"0\r\n\r\n")
    return True


async def until_close(writer: asyncio.StreamWriter, *_: object) -> bool:
    writer.write(b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\r\nbusy ")
    await writer.drain()
    await asyncio.sleep(0.01)
    writer.write(b"until the end")
    return False


async def truncated(writer: asyncio.StreamWriter, *_: object) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
    await writer.drain()
    return False


async def silent(writer: asyncio.StreamWriter, *_: object) -> bool:
    await asyncio.sleep(5)
    return False


ANSWERS: dict[str, Callable[..., Awaitable[bool]]] = {
    "/echo": echo,
    "/chunked": chunked,
    "/until-close": until_close,
    "/truncated": truncated,
    "/silent": silent,
}


def run(test: Callable[[Worker, UnixPool], Awaitable[None]], tmp_path: Path) -> Worker:
    """Serve on a fresh socket, run `test` with a pool on it, then close both."""
    worker = Worker()
    path = str(tmp_path / "worker.sock")

    async def main() -> None:
        server = await asyncio.start_unix_server(worker.handle, path)
        pool = UnixPool(path)
        try:
            await asyncio.wait_for(test(worker, pool), 10)
        finally:
            pool.close()
            server.close()
            await asyncio.sleep(0.05)  # let the aborted connections' handlers finish

    asyncio.run(main())
    return worker


def test_requests_reuse_one_connection_and_carry_headers_and_body(tmp_path: Path):
    async def test(worker: Worker, pool: UnixPool) -> None:
        for index in range(3):
            body = b'{"row": %d}' % index
            response = await pool.post(
                "/echo", body, {"content-type": "application/json", "accept": "text/csv"}
            )
            assert response.status == 200
            assert response.body == body
            assert response.headers["content-type"] == "application/json"
            assert response.headers["x-amzn-sagemaker-custom-attributes"] == "a=1, b=2"
        assert pool.idle == 1

    worker = run(test, tmp_path)
    assert worker.connections == 1
    target, headers, body = worker.requests[-1]
    assert (target, body) == ("/echo", b'{"row": 2}')
    assert headers["accept"] == "text/csv"
    assert headers["content-length"] == "10"


def test_concurrent_requests_get_their_own_connections_and_answers(tmp_path: Path):
    async def test(worker: Worker, pool: UnixPool) -> None:
        bodies = [b"request %d " % i * (i * 5000 + 1) for i in range(8)]
        answers = await asyncio.gather(*(pool.post("/echo", b, {}) for b in bodies))
        assert [a.body for a in answers] == bodies
        assert pool.idle == 8

    worker = run(test, tmp_path)
    assert worker.connections == 8


def test_a_large_body_crosses_whole(tmp_path: Path):
    async def test(worker: Worker, pool: UnixPool) -> None:
        body = bytes(range(256)) * 8192  # 2 MiB
        response = await pool.post("/echo", body, {"content-type": "application/octet-stream"})
        assert response.body == body

    run(test, tmp_path)


def test_chunked_and_close_delimited_bodies_are_read_whole(tmp_path: Path):
    async def test(worker: Worker, pool: UnixPool) -> None:
        response = await pool.post("/chunked", b"", {})
        assert (response.status, response.body) == (200, b"hello, chunked world")
        closing = await pool.post("/until-close", b"x", {})
        assert (closing.status, closing.body) == (503, b"busy until the end")
        assert pool.idle == 0  # the worker said it closes: not kept for reuse
        assert (await pool.post("/echo", b"again", {})).body == b"again"

    worker = run(test, tmp_path)
    assert worker.connections == 2


def test_a_response_cut_short_is_a_closed_connection(tmp_path: Path):
    async def test(worker: Worker, pool: UnixPool) -> None:
        with pytest.raises(UpstreamClosed):
            await pool.post("/truncated", b"", {})
        assert (await pool.post("/echo", b"next", {})).body == b"next"

    run(test, tmp_path)


def test_a_silent_worker_times_out_and_its_connection_is_dropped(tmp_path: Path):
    async def test(worker: Worker, pool: UnixPool) -> None:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await pool.post("/silent", b"", {}, timeout=0.3)
        assert 0.25 < time.monotonic() - started < 2
        assert pool.idle == 0
        assert (await pool.post("/echo", b"ok", {}, timeout=2)).body == b"ok"

    worker = run(test, tmp_path)
    assert worker.connections == 2


def test_no_worker_listening_is_a_closed_connection(tmp_path: Path):
    async def main() -> None:
        with pytest.raises(UpstreamClosed, match="cannot connect"):
            await UnixPool(str(tmp_path / "missing.sock")).post("/echo", b"", {})

    asyncio.run(main())


def test_header_values_cannot_smuggle_lines(tmp_path: Path):
    async def test(worker: Worker, pool: UnixPool) -> None:
        with pytest.raises(ValueError, match="carriage return"):
            await pool.post("/echo", b"", {"accept": "text/csv\r\nx-evil: 1"})

    worker = run(test, tmp_path)
    assert worker.requests == []
