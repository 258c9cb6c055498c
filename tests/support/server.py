"""A real `sabio server` process on a free loopback port."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


STARTED: list[SabioServer] = []
"""Every server a test started, so that the session stops those a failed test left running."""


class SabioServer:
    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.log = home / "server.log"

    def start(self, timeout: float = 60) -> None:
        env = {
            **os.environ,
            "SABIO_RECONCILE_INTERVAL_SECONDS": "0.2",
            "SABIO_CAPTURE_FLUSH_SECONDS": "0.3",
            **self.env,
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sabio",
                    "server",
                    "--port",
                    str(self.port),
                    "--home",
                    str(self.home),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        STARTED.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start in time")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as a service manager would; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_server(home: Path, env: dict[str, str] | None = None) -> Iterator[SabioServer]:
    """A started server, stopped when the block ends: the body of most server fixtures."""
    running = SabioServer(home, env=env)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def metric_value(server: SabioServer, name: str) -> int:
    """An unlabelled counter from the server's `/metrics`."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(rf"^{re.escape(name)} (\d+)$", text, re.MULTILINE)
    assert found, f"{name} is not in /metrics:\n{text}"
    return int(found.group(1))


def stop_leftovers() -> None:
    """Stop the servers still running: those whose test failed before stopping them."""
    for server in STARTED:
        if server.process is not None and server.process.poll() is None:
            server.stop(timeout=10)
    STARTED.clear()
