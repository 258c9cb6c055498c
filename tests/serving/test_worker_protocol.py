"""The worker's HTTP protocol on the wire: a real worker process on a Unix socket, read with a
raw socket so the test sees how the bytes arrive (each response in one piece, the interim
`100 Continue` and bodiless responses never held back)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ECHO = """\
def model_fn(model_dir):
    return None


def transform_fn(model, data, content_type, accept):
    if isinstance(data, str):
        data = data.encode()
    return data * 1, content_type
"""


@pytest.fixture(scope="module")
def worker_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("protocol")
    (root / "model" / "code").mkdir(parents=True)
    (root / "model" / "code" / "inference.py").write_text(ECHO)
    path = root / "worker.sock"
    argv = [sys.executable, "-m", "sabio.serving.worker", "--model-dir", str(root / "model")]
    with (root / "worker.log").open("wb") as log:
        process = subprocess.Popen(
            [*argv, "--uds", str(path)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not answers(path):
            assert process.poll() is None, (root / "worker.log").read_text()
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.05)
        yield path
    finally:
        process.terminate()
        process.wait(timeout=30)


def connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        raise
    return sock


def answers(path: Path) -> bool:
    try:
        with connect(path) as sock:
            sock.sendall(b"GET /ping HTTP/1.1\r\nhost: worker\r\n\r\n")
            return sock.recv(1024).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def split(response: bytes) -> tuple[bytes, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status, *fields = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (f.split(":", 1) for f in fields)}
    return status.encode(), headers, body


def test_each_response_arrives_in_one_piece(worker_socket: Path):
    with connect(worker_socket) as sock:
        for index in range(50):
            body = b'{"row": %d}' % index
            sock.sendall(
                b"POST /invocations HTTP/1.1\r\nhost: worker\r\ncontent-type: application/json"
                b"\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
            )
            status, headers, received = split(sock.recv(1 << 20))
            assert status == b"HTTP/1.1 200 OK"
            assert headers["content-length"] == str(len(body))
            assert received == body, f"response {index} arrived in pieces"


def test_large_responses_arrive_whole(worker_socket: Path):
    body = bytes(range(256)) * 4096  # 1 MiB
    with connect(worker_socket) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nhost: worker\r\n"
            b"content-type: application/octet-stream\r\ncontent-length: %d\r\n\r\n"
            % len(body)
            + body
        )
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < len(body):
            chunk = sock.recv(1 << 20)
            assert chunk, "the worker closed the connection early"
            data += chunk
        assert split(data)[2] == body


def test_continue_and_bodiless_responses_are_not_held(worker_socket: Path):
    with connect(worker_socket) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nhost: worker\r\ncontent-type: text/plain\r\n"
            b"expect: 100-continue\r\ncontent-length: 5\r\n\r\n"
        )
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        status, _, body = split(sock.recv(1024))
        assert (status, body) == (b"HTTP/1.1 200 OK", b"hello")

        sock.sendall(b"HEAD /ping HTTP/1.1\r\nhost: worker\r\n\r\n")
        status, headers, body = split(sock.recv(1024))
        assert (status, body) == (b"HTTP/1.1 200 OK", b"")
        assert headers["content-length"] == "0"
