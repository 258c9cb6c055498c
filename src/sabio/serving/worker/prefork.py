"""Several model-server processes on one listening socket (`SAGEMAKER_MODEL_SERVER_WORKERS`).

The model is loaded once and the socket bound once; then the process forks that many servers,
which share the model's memory copy-on-write and accept connections from the same socket, as
gunicorn's pre-fork workers do in SageMaker's framework containers. The parent only supervises:
SIGTERM or SIGINT is passed on to every server, and if one server dies the others are stopped
and the parent exits non-zero, so the platform replaces the whole instance rather than serving
on with less capacity than it believes it has. To the platform the instance is still one
process group behind one socket, so the router's per-instance bookkeeping stays true.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
from collections.abc import Callable, Mapping
from types import FrameType

logger = logging.getLogger("sabio.serving.worker")

WORKERS_VARIABLE = "SAGEMAKER_MODEL_SERVER_WORKERS"
MAX_WORKERS = 64
_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class WorkersError(ValueError):
    """`SAGEMAKER_MODEL_SERVER_WORKERS` is not a usable number of processes."""


def worker_count(environ: Mapping[str, str]) -> int:
    """The number of server processes: `SAGEMAKER_MODEL_SERVER_WORKERS`, default 1."""
    value = environ.get(WORKERS_VARIABLE, "").strip()
    if not value:
        return 1
    try:
        count = int(value)
    except ValueError:
        raise WorkersError(f"{WORKERS_VARIABLE}={value!r} is not a whole number") from None
    if not 1 <= count <= MAX_WORKERS:
        raise WorkersError(f"{WORKERS_VARIABLE}={count} must be between 1 and {MAX_WORKERS}")
    return count


def _die_with_parent() -> None:
    """A server must not outlive its supervisor (which the platform stops and watches)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def serve_forked(count: int, serve: Callable[[], None]) -> int:
    """Run `serve` in `count` forked processes and supervise them; the exit code."""
    children: dict[int, int] = {}
    stopping = False

    def stop(signum: int, frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    # Blocked while forking, so a signal never runs the parent's handler inside a child.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    for index in range(count):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                for signum in _STOP_SIGNALS:
                    signal.signal(signum, signal.SIG_DFL)
                _die_with_parent()
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
                serve()
            except BaseException:
                logger.exception("Model server process %d failed", index + 1)
                code = 1
            finally:
                os._exit(code)
        children[pid] = index
    for signum in _STOP_SIGNALS:
        signal.signal(signum, stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    logger.info("Serving with %d model server processes: %s", count, sorted(children))
    exit_code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        index = children.pop(pid, -1)
        code = os.waitstatus_to_exitcode(status)
        if not stopping:
            logger.error(
                "Model server process %d (pid %d) exited with code %d; stopping the others",
                index + 1,
                pid,
                code,
            )
            exit_code = code if code > 0 else 1
            stop(signal.SIGTERM)
    return exit_code
