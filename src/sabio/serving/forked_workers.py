"""The server's side of the pre-warmed parent (`sabio.serving.prewarm`): starting a worker by a
fork, and the handle on a forked worker that stands in for a `LocalProcess`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path

from sabio.compute.cgroups import CgroupLimiter
from sabio.compute.local import LocalProcess, WorkUnit, address_space_limit, unit_env


class ForkedProcess:
    """A worker forked by a pre-warmed parent, offering what the server needs of a running
    unit (`compute.local.LocalProcess`): its exit status, signals, a graceful stop and the
    verdicts of its cgroup."""

    def __init__(
        self,
        pid: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        cgroup: CgroupLimiter | None = None,
        rlimit_bytes: int = 0,
    ) -> None:
        self.pid = pid
        self._reader = reader
        self._writer = writer
        self._cgroup = cgroup
        self._rlimit_bytes = rlimit_bytes
        self._code: int | None = None
        self._oom_killed = False
        self._exited = asyncio.Event()
        self._watch = asyncio.create_task(self._wait_for_exit())

    async def _wait_for_exit(self) -> None:
        code = -signal.SIGKILL  # the parent went away: its children were killed with it
        with contextlib.suppress(OSError, ValueError, asyncio.IncompleteReadError):
            line = await self._reader.readline()
            if line:
                code = int(json.loads(line).get("exit", code))
        if self._cgroup is not None:
            self._oom_killed = self._cgroup.oom_killed()
        self._code = code
        self._exited.set()
        self._writer.close()

    @property
    def returncode(self) -> int | None:
        return self._code

    @property
    def termination_signal(self) -> int | None:
        code = self._code
        return -code if code is not None and code < 0 else None

    def oom_killed(self) -> bool:
        if self._code is not None or self._cgroup is None:
            return self._oom_killed
        return self._cgroup.oom_killed()

    def limits_description(self) -> str:
        if self._cgroup is not None:
            return self._cgroup.describe()
        if self._rlimit_bytes:
            return f"rlimits: {self._rlimit_bytes // 1024**2} MiB address space"
        return "no limits"

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    async def wait(self) -> int:
        await self._exited.wait()
        self.signal_group(signal.SIGKILL)  # anything the worker itself started
        cgroup = self._cgroup
        if cgroup is not None:
            deadline = asyncio.get_running_loop().time() + 2.0
            while not cgroup.remove() and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
        assert self._code is not None
        return self._code

    async def stop(self, grace_seconds: float) -> int:
        """SIGTERM the worker's process group, SIGKILL it after the grace period."""
        if self._code is None:
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exited.wait(), grace_seconds)
        if self._code is None:
            self.signal_group(signal.SIGKILL)
            if self._cgroup is not None:
                self._cgroup.kill()
        return await self.wait()


class PrewarmParent:
    """The server's handle on one pre-warmed parent: started once per model environment,
    asked to fork a worker per cold start."""

    def __init__(self, process: LocalProcess, control: Path) -> None:
        self.process = process
        self.control = control

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def wait_ready(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.process.returncode is not None:
                raise RuntimeError(
                    f"the pre-warmed parent exited with code {self.process.returncode}"
                )
            if self.control.exists():
                try:
                    _, writer = await asyncio.open_unix_connection(str(self.control))
                except OSError:
                    pass
                else:
                    writer.close()
                    return
            await asyncio.sleep(0.02)
        raise RuntimeError(f"the pre-warmed parent was not ready within {timeout:.0f} seconds")

    async def fork(
        self,
        args: list[str],
        env: dict[str, str],
        cwd: Path,
        log: Path,
        *,
        cgroup: CgroupLimiter | None = None,
        rlimit_bytes: int = 0,
    ) -> ForkedProcess:
        """Fork one worker with the given `sabio serve-model` arguments."""
        request = {
            "args": args,
            "env": env,
            "cwd": str(cwd),
            "log": str(log),
            "cgroup_procs": [os.fsdecode(p) for p in cgroup.join_paths()] if cgroup else [],
            "rlimit_bytes": rlimit_bytes,
        }
        reader, writer = await asyncio.open_unix_connection(str(self.control), limit=1 << 20)
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            answer = json.loads(await reader.readline() or b"{}")
        except BaseException:
            writer.close()
            raise
        if "pid" not in answer:
            writer.close()
            raise RuntimeError(answer.get("error") or "the pre-warmed parent went away")
        return ForkedProcess(
            int(answer["pid"]), reader, writer, cgroup=cgroup, rlimit_bytes=rlimit_bytes
        )

    async def launch(self, unit: WorkUnit) -> ForkedProcess:
        """Fork a `sabio serve-model` unit (`python -m sabio.serving.worker ...`) with the
        limits the local backend would give it: a cgroup where one can be made, else an
        address-space rlimit."""
        if list(unit.argv[1:3]) != ["-m", "sabio.serving.worker"]:
            raise RuntimeError("only model workers (python -m sabio.serving.worker) are forked")
        cgroup = None
        if unit.use_cgroups:
            cgroup = CgroupLimiter.create(cpus=unit.cpus, memory_bytes=unit.memory_bytes)
        rlimit = address_space_limit(unit.memory_bytes, cgroup)
        unit.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = unit_env(unit)
        try:
            return await self.fork(
                list(unit.argv[3:]),
                env,
                unit.cwd,
                unit.log_path,
                cgroup=cgroup,
                rlimit_bytes=rlimit,
            )
        except BaseException:
            if cgroup is not None:
                cgroup.remove()
            raise

    async def stop(self, grace_seconds: float) -> None:
        await self.process.stop(grace_seconds)
        self.control.unlink(missing_ok=True)
