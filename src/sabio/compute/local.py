"""The local backend: each unit of work is a subprocess in its own session, killed if the server
dies. The resources of its instance type are applied with a cgroup where one is writable (else an
address-space rlimit) and thread counts; a unit may ask for a bubblewrap sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import math
import os
import resource
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sabio.compute.cgroups import CgroupLimiter, format_bytes
from sabio.compute.sandbox import Sandbox, bubblewrap_available, wrap

_log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_MIN_ADDRESS_SPACE = 4 * 1024**3
_CGROUP_REMOVE_TIMEOUT = 2.0


@dataclass(frozen=True)
class WorkUnit:
    """What to run and with which resources. With a `sandbox` (used when bubblewrap works here),
    `cwd` is a path inside the sandbox."""

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    log_path: Path
    cpus: float = 1
    memory_bytes: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    sandbox: Sandbox | None = None
    use_cgroups: bool = True


def _thread_limits(cpus: float) -> dict[str, str]:
    count = str(max(1, min(math.ceil(cpus), os.cpu_count() or 1)))
    return {
        name: count
        for name in (
            "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
            "MKL_NUM_THREADS",
            "NUMEXPR_MAX_THREADS",
        )
    }


def isolate_child(rlimit_bytes: int, cgroup_procs: Sequence[str | bytes]) -> None:
    """In a freshly forked child, before it runs the unit: join the unit's cgroup, take a
    session of its own, die with its parent and take the address-space rlimit. Shared by
    `subprocess` starts (as `preexec_fn`) and the pre-warmed parent's forks."""
    # First, so that everything after (and the unit's code) is accounted and limited.
    pid = str(os.getpid()).encode()
    for path in cgroup_procs:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, pid)
        finally:
            os.close(fd)
    os.setsid()
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass
    if rlimit_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (rlimit_bytes, rlimit_bytes))


def address_space_limit(memory_bytes: int, cgroup: CgroupLimiter | None) -> int:
    """The rlimit that stands in for a cgroup memory limit where none could be set (0: none)."""
    if memory_bytes and (cgroup is None or not cgroup.limits_memory):
        return max(memory_bytes, _MIN_ADDRESS_SPACE)
    return 0


def unit_env(unit: WorkUnit) -> dict[str, str]:
    """The unit's environment, with thread counts matched to its CPUs unless it sets them."""
    return {**_thread_limits(unit.cpus), **unit.env}


def _group_members(pgid: int) -> list[int]:
    """Processes whose process group is `pgid` (scans /proc)."""
    members: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid).encode():
            members.append(int(entry.name))
    return members


class LocalProcess:
    """A running unit of work."""

    def __init__(
        self,
        unit: WorkUnit,
        popen: subprocess.Popen[bytes],
        *,
        cgroup: CgroupLimiter | None = None,
        rlimit_bytes: int = 0,
        sandboxed: bool = False,
    ) -> None:
        self.unit = unit
        self._popen = popen
        self._cgroup = cgroup
        self._rlimit_bytes = rlimit_bytes
        self._sandboxed = sandboxed
        self._finished = False
        self._oom_killed = False
        self._peak: int | None = None

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def sandboxed(self) -> bool:
        """Whether the unit runs inside bubblewrap (its `pid` is then the bwrap monitor)."""
        return self._sandboxed

    @property
    def returncode(self) -> int | None:
        """The exit status once the unit has exited: negative for a signal when run directly,
        128 + signal when sandboxed (bwrap reports it as a shell would)."""
        code = self._popen.poll()
        if code is not None:
            self._finish()
        return code

    @property
    def termination_signal(self) -> int | None:
        """The signal that ended the unit, if one did, whether or not it was sandboxed."""
        code = self._popen.poll()
        if code is None:
            return None
        if code < 0:
            return -code
        if self._sandboxed and 128 < code <= 128 + 64:
            return code - 128
        return None

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this unit for exceeding its memory limit.
        Only known with a cgroup memory limit; with rlimits an allocation fails instead."""
        if self._finished or self._cgroup is None:
            return self._oom_killed
        return self._cgroup.oom_killed()

    def peak_memory_bytes(self) -> int | None:
        """The unit's highest memory use (cgroup accounting), None if not measured."""
        if self._finished or self._cgroup is None:
            return self._peak
        return self._cgroup.peak_memory_bytes()

    def limits_description(self) -> str:
        """How the unit's resources are enforced, for logs and failure reasons."""
        if self._cgroup is not None:
            text = self._cgroup.describe()
            if self._rlimit_bytes:
                text += f", rlimits: {format_bytes(self._rlimit_bytes)} address space"
            return text
        if self._rlimit_bytes:
            return f"rlimits: {format_bytes(self._rlimit_bytes)} address space"
        return "no limits"

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._popen.pid, signum)

    def _terminate(self) -> None:
        """SIGTERM every process of the unit. In a sandbox the bwrap monitor itself is spared:
        it would die at once and take the sandbox with it (--die-with-parent), denying the
        unit's code its grace period; it exits by itself when the code does."""
        if not self._sandboxed:
            self.signal_group(signal.SIGTERM)
            return
        targets = set(_group_members(self.pid))
        if self._cgroup is not None:
            targets.update(self._cgroup.pids())
        targets.discard(self.pid)
        for pid in targets:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)

    def _kill(self) -> None:
        self.signal_group(signal.SIGKILL)
        if self._cgroup is not None:
            self._cgroup.kill()

    def _finish(self, timeout: float = 0.0) -> None:
        """After the unit's main process exited: record the cgroup's verdicts, kill what is left
        of the unit and remove its cgroup (retried on later calls while processes die)."""
        if not self._finished:
            self._finished = True
            self.signal_group(signal.SIGKILL)
            if self._cgroup is not None:
                self._oom_killed = self._cgroup.oom_killed()
                self._peak = self._cgroup.peak_memory_bytes()
        if self._cgroup is not None and not self._cgroup.removed:
            self._cgroup.remove(timeout)

    async def _wait_exit(self, timeout: float | None) -> bool:
        """Wait for the main process to exit (without reaping it), up to `timeout` seconds."""
        if self._popen.poll() is not None:
            return True
        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(self._popen.pid)
        except (OSError, AttributeError):
            deadline = None if timeout is None else loop.time() + timeout
            while self._popen.poll() is None:
                if deadline is not None and loop.time() >= deadline:
                    return False
                await asyncio.sleep(0.02)
            return True
        exited: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(pidfd, ready)
        try:
            await asyncio.wait_for(exited, timeout)
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
        return True

    async def _cleanup(self) -> int:
        code = self._popen.wait()
        self._finish()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _CGROUP_REMOVE_TIMEOUT
        while self._cgroup is not None and not self._cgroup.removed:
            if loop.time() >= deadline:
                _log.warning("cgroup %s still busy; will retry", self._cgroup.name)
                break
            await asyncio.sleep(0.01)
            self._finish()
        return code

    async def wait(self) -> int:
        """Wait until the unit exits by itself, then clean up after it."""
        await self._wait_exit(None)
        return await self._cleanup()

    async def stop(self, grace_seconds: float) -> int:
        """SIGTERM the unit's processes, then SIGKILL them all after the grace period."""
        if self._popen.poll() is None:
            self._terminate()
            await self._wait_exit(grace_seconds)
        self._kill()
        await self._wait_exit(None)
        return await self._cleanup()


class LocalBackend:
    """Runs units as local subprocesses. Call `start` from the event-loop thread: the
    parent-death signal is tied to the thread that forks."""

    def start(self, unit: WorkUnit) -> LocalProcess:
        unit.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = unit_env(unit)
        argv = list(unit.argv)
        cwd = unit.cwd
        sandboxed = False
        if unit.sandbox is not None and bubblewrap_available():
            argv = wrap(argv, unit.sandbox, cwd=unit.cwd, scratch_dir=unit.log_path.parent)
            cwd = unit.log_path.parent  # unit.cwd is a path inside the sandbox
            sandboxed = True
        cgroup = None
        if unit.use_cgroups:
            cgroup = CgroupLimiter.create(cpus=unit.cpus, memory_bytes=unit.memory_bytes)
        try:
            return self._spawn(unit, argv, cwd, env, cgroup, sandboxed)
        except subprocess.SubprocessError as error:
            if cgroup is None:
                raise
            # The child could not join its cgroup (it raised in preexec): run without one.
            _log.warning(
                "could not place unit in cgroup %s (%s); using rlimits", cgroup.name, error
            )
            cgroup.remove()
            return self._spawn(unit, argv, cwd, env, None, sandboxed)
        except BaseException:
            if cgroup is not None:
                cgroup.remove()
            raise

    def _spawn(
        self,
        unit: WorkUnit,
        argv: list[str],
        cwd: Path,
        env: Mapping[str, str],
        cgroup: CgroupLimiter | None,
        sandboxed: bool,
    ) -> LocalProcess:
        rlimit = address_space_limit(unit.memory_bytes, cgroup)
        join = cgroup.join_paths() if cgroup is not None else []
        with unit.log_path.open("ab") as log:
            popen = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=functools.partial(isolate_child, rlimit, join),
                close_fds=True,
            )
        return LocalProcess(unit, popen, cgroup=cgroup, rlimit_bytes=rlimit, sandboxed=sandboxed)
