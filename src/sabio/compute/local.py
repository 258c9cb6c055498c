"""The local backend: each unit of work is a subprocess in its own session, with the resources
of its instance type applied as rlimits and thread counts, and killed if the server dies."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import resource
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_MIN_ADDRESS_SPACE = 4 * 1024**3


@dataclass(frozen=True)
class WorkUnit:
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    log_path: Path
    cpus: int = 1
    memory_bytes: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)


def _thread_limits(cpus: int) -> dict[str, str]:
    count = str(max(1, min(cpus, os.cpu_count() or 1)))
    return {
        name: count
        for name in (
            "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
            "MKL_NUM_THREADS",
            "NUMEXPR_MAX_THREADS",
        )
    }


def _preexec(memory_bytes: int) -> Callable[[], None]:
    def setup() -> None:
        os.setsid()
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except OSError:
            pass
        if memory_bytes:
            limit = max(memory_bytes, _MIN_ADDRESS_SPACE)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return setup


class LocalProcess:
    """A running unit of work."""

    def __init__(self, unit: WorkUnit, popen: subprocess.Popen[bytes]) -> None:
        self.unit = unit
        self._popen = popen

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._popen.pid, signum)

    async def stop(self, grace_seconds: float) -> int:
        """SIGTERM the process group, then SIGKILL after the grace period."""
        if self.returncode is None:
            self.signal_group(signal.SIGTERM)
            deadline = asyncio.get_running_loop().time() + grace_seconds
            while self.returncode is None and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
        if self.returncode is None:
            self.signal_group(signal.SIGKILL)
            while self.returncode is None:
                await asyncio.sleep(0.01)
        else:
            self.signal_group(signal.SIGKILL)
        return self._popen.wait()


class LocalBackend:
    """Runs units as local subprocesses. Call `start` from the event-loop thread: the
    parent-death signal is tied to the thread that forks."""

    def start(self, unit: WorkUnit) -> LocalProcess:
        unit.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**_thread_limits(unit.cpus), **unit.env}
        with unit.log_path.open("ab") as log:
            popen = subprocess.Popen(
                list(unit.argv),
                cwd=unit.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_preexec(unit.memory_bytes),
                close_fds=True,
            )
        return LocalProcess(unit, popen)
