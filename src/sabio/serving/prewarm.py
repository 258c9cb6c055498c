"""Fast cold starts: a pre-warmed parent process that forks model workers.

Starting `sabio serve-model` from scratch spends most of its time importing Python, the
worker's own code and the frameworks a model needs (numpy, scikit-learn, pandas, ...). A parent
(`python -m sabio.serving.prewarm --control <socket>`) pays that once: it imports all of it,
then waits, single-threaded and without an event loop, for commands on a Unix socket. Each
command forks a child that takes the worker's isolation (its cgroup or address-space rlimit,
its own session and process group, its log file, its environment and directory), loads the
model and serves on its own socket, exactly as a freshly started worker would.

The protocol is one connection per child: the server sends one JSON line (the worker's
arguments and the unit's environment, directory, log file and limits); the parent answers
`{"pid": N}` once the child has joined its cgroup and session, and `{"exit": code}` when it
reaps the child (code as `subprocess` reports it: negative for a signal). Closing the
connection from the server side kills the child. The parent dies with the server, and the
children with the parent (parent-death signals), so nothing outlives the server. The server's
side of the protocol is `sabio.serving.forked_workers`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from sabio.compute.local import isolate_child

_CHILD_FAILURE = 70

PRELOADED = (
    "sabio.serving.worker.main",
    "sabio.serving.worker.app",
    "sabio.serving.worker.service",
    "sabio.serving.worker.codecs",
    "sabio.serving.worker.defaults",
    "uvicorn",
    "uvicorn.config",
    "uvicorn.server",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.loops.uvloop",
    "uvloop",
    "httptools",
    "numpy",
    "scipy",
    "pandas",
    "joblib",
    "sklearn",
    "sklearn.base",
    "sklearn.utils",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.tree",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "sklearn.svm",
    "sklearn.neighbors",
    "xgboost",
)
"""What the parent imports up front; modules the environment lacks are skipped."""


# The parent (a plain synchronous process).


def _say(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} prewarm[{os.getpid()}]: {message}", flush=True)


def preload() -> tuple[list[str], list[str]]:
    """Import what workers need; the names imported and those this environment lacks (a
    missing or broken optional framework only costs the children that use it time)."""
    loaded, skipped = [], []
    for name in PRELOADED:
        try:
            importlib.import_module(name)
        except Exception:
            skipped.append(name)
        else:
            loaded.append(name)
    return loaded, skipped


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


class _Parent:
    def __init__(self, control: Path) -> None:
        self.selector = selectors.DefaultSelector()
        control.unlink(missing_ok=True)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(control))
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.buffers: dict[socket.socket, bytes] = {}
        self.children: dict[int, socket.socket | None] = {}
        self.owners: dict[socket.socket, int] = {}

    def run(self) -> None:
        while True:
            for key, _ in self.selector.select(1.0):
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_r, 4096)
                else:
                    assert isinstance(key.fileobj, socket.socket)
                    self._readable(key.fileobj)
            self._reap()

    def _accept(self) -> None:
        with contextlib.suppress(BlockingIOError):
            conn, _ = self.listener.accept()
            conn.setblocking(True)
            self.buffers[conn] = b""
            self.selector.register(conn, selectors.EVENT_READ, "conn")

    def _readable(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        if conn in self.owners:
            return  # nothing more is expected once a child runs
        buffer = self.buffers[conn] + data
        self.buffers[conn] = buffer
        if b"\n" not in buffer:
            return
        line = buffer.split(b"\n", 1)[0]
        try:
            request = json.loads(line)
            pid = self._fork(request)
        except Exception as exc:
            _say(f"could not start a worker: {exc}")
            self._send(conn, {"error": str(exc) or type(exc).__name__})
            self._drop(conn)
            return
        self.children[pid] = conn
        self.owners[conn] = pid
        self._send(conn, {"pid": pid})

    def _drop(self, conn: socket.socket) -> None:
        """The server closed the connection: its child, if still running, goes too."""
        pid = self.owners.pop(conn, None)
        if pid is not None and pid in self.children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            self.children[pid] = None
        self.buffers.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn)
        conn.close()

    @staticmethod
    def _send(conn: socket.socket, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps(message).encode() + b"\n")

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            conn = self.children.pop(pid, None)
            if conn is not None:
                self._send(conn, {"exit": code})
                self.owners.pop(conn, None)
                self._drop(conn)

    def _fork(self, request: dict[str, Any]) -> int:
        if _thread_count() > 1:
            _say("warning: the parent runs more than one thread; forking anyway")
        ready_r, ready_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            self._become_worker(request, ready_w)  # never returns
        os.close(ready_w)
        try:
            answer = os.read(ready_r, 1)  # the child has joined its cgroup and session
        finally:
            os.close(ready_r)
        if answer != b"1":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            raise RuntimeError("the forked worker failed before it could start")
        return pid

    def _become_worker(self, request: dict[str, Any], ready: int) -> None:
        code = _CHILD_FAILURE
        try:
            isolate_child(int(request.get("rlimit_bytes") or 0), request.get("cgroup_procs") or [])
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)
            self.selector.close()
            self.listener.close()
            for conn in list(self.buffers):
                conn.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.close(log)
            os.close(devnull)
            os.environ.clear()
            os.environ.update(request["env"])
            os.chdir(request["cwd"])
            os.write(ready, b"1")
            os.close(ready)
            from sabio.serving.worker.__main__ import main

            sys.argv = ["python -m sabio.serving.worker", *request["args"]]
            code = main(list(request["args"]))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else _CHILD_FAILURE
        except BaseException:
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sabio.serving.prewarm",
        description="Import the model worker and its frameworks once, then fork workers.",
    )
    parser.add_argument("--control", type=Path, required=True, help="Unix socket for commands")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    started = time.monotonic()
    loaded, skipped = preload()
    gc.collect()
    gc.freeze()  # keeps collections in the children from touching (and copying) these pages
    parent = _Parent(args.control)
    elapsed = time.monotonic() - started
    _say(f"imported {', '.join(loaded)} in {elapsed:.2f}s")
    if skipped:
        _say(f"not in this environment: {', '.join(skipped)}")
    _say("ready")
    try:
        parent.run()
    finally:
        args.control.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
