"""Resource limits for a unit of work from cgroups (v1 or v2, detected at run time), so that a
job gets the CPUs and memory of its instance type and a memory overrun is a clear OOM kill.

Unit cgroups live under a `sabio` group created inside the server's own cgroup of each
controller, so whatever limits the server itself runs under still apply to its jobs. Every
failure (read-only cgroupfs, missing controller, v2 "no internal processes" rule) makes
`CgroupLimiter.create` return None and the caller falls back to rlimits."""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import logging
import os
import secrets
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

_log = logging.getLogger(__name__)

PARENT_NAME = "sabio"
DEFAULT_PIDS_MAX = 4096
_CPU_PERIOD_US = 100_000
_V2_CONTROLLERS = ("memory", "cpu", "pids")
_counter = itertools.count(1)


@dataclass(frozen=True)
class CgroupLayout:
    """Where this process may create unit cgroups: for each controller, the `sabio` parent."""

    version: Literal[1, 2]
    parents: Mapping[str, Path]

    @property
    def controllers(self) -> tuple[str, ...]:
        return tuple(sorted(self.parents))


@dataclass(frozen=True)
class _Mount:
    mountpoint: Path
    root: str
    fstype: str
    options: frozenset[str]


def _mounts(mountinfo: str) -> list[_Mount]:
    mounts: list[_Mount] = []
    for line in mountinfo.splitlines():
        pre, sep, post = line.partition(" - ")
        if not sep:
            continue
        fields, tail = pre.split(), post.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        fstype = tail[0]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        mountpoint = fields[4].replace("\\040", " ")
        mounts.append(_Mount(Path(mountpoint), fields[3], fstype, frozenset(tail[2].split(","))))
    return mounts


def _own_cgroups(proc_cgroup: str) -> dict[str, str]:
    """Controller (or "" for the v2 hierarchy) -> this process's cgroup path."""
    result: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            result[""] = path
        for controller in controllers.split(","):
            if controller:
                result[controller] = path
    return result


def _directory(mount: _Mount, own_path: str) -> Path | None:
    """Our own cgroup's directory in `mount` (None if not visible there: then we cannot nest
    unit cgroups below it and must not create them elsewhere, outside our own limits)."""
    relative = own_path
    if mount.root not in ("/", "") and (
        own_path == mount.root or own_path.startswith(mount.root.rstrip("/") + "/")
    ):
        relative = own_path[len(mount.root) :]
    candidate = mount.mountpoint / relative.lstrip("/")
    return candidate if candidate.is_dir() else None


def _write(path: Path, value: str) -> None:
    with path.open("w") as handle:
        handle.write(value)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _prepare_parent(directory: Path) -> Path | None:
    parent = directory / PARENT_NAME
    try:
        parent.mkdir(exist_ok=True)
    except OSError as error:
        _log.debug("cannot create cgroup %s: %s", parent, error)
        return None
    if not os.access(parent / "cgroup.procs", os.W_OK):
        _log.debug("cgroup %s is not writable", parent)
        return None
    _sweep(parent)
    return parent


def _detect_v2(mount: _Mount, own: Mapping[str, str]) -> CgroupLayout | None:
    if "" not in own:
        return None
    here = _directory(mount, own[""])
    if here is None:
        return None
    # Controllers our own cgroup may hand down (enabled in its parent's subtree_control).
    available = (_read(here / "cgroup.controllers") or "").split()
    if "memory" not in available:
        return None
    wanted = [c for c in _V2_CONTROLLERS if c in available]
    try:
        enabled = set((_read(here / "cgroup.subtree_control") or "").split())
        missing = [c for c in wanted if c not in enabled]
        if missing:
            # Refused (EBUSY) in a non-root cgroup that holds processes, ours included.
            _write(here / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
    except OSError as error:
        _log.debug("cannot enable %s in %s: %s", wanted, here, error)
        return None
    parent = _prepare_parent(here)
    if parent is None:
        return None
    try:
        _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
    except OSError as error:
        _log.debug("cannot enable %s in %s: %s", wanted, parent, error)
        return None
    enabled = set((_read(parent / "cgroup.subtree_control") or "").split())
    if "memory" not in enabled:
        return None
    return CgroupLayout(2, dict.fromkeys((c for c in wanted if c in enabled), parent))


def _detect_v1(mounts: Sequence[_Mount], own: Mapping[str, str]) -> CgroupLayout | None:
    parents: dict[str, Path] = {}
    for controller in ("memory", "cpu", "pids"):
        mount = next((m for m in mounts if m.fstype == "cgroup" and controller in m.options), None)
        if mount is None or controller not in own:
            continue
        here = _directory(mount, own[controller])
        parent = None if here is None else _prepare_parent(here)
        if parent is not None:
            parents[controller] = parent
    return CgroupLayout(1, parents) if parents else None


@functools.cache
def detect() -> CgroupLayout | None:
    """The usable cgroup layout, detected once. v2 is used when its hierarchy has the memory
    controller, else the v1 memory/cpu/pids hierarchies (whichever are writable)."""
    try:
        mounts = _mounts(Path("/proc/self/mountinfo").read_text())
        own = _own_cgroups(Path("/proc/self/cgroup").read_text())
    except OSError as error:
        _log.debug("cannot read cgroup information: %s", error)
        return None
    for mount in mounts:
        if mount.fstype == "cgroup2":
            layout = _detect_v2(mount, own)
            if layout is not None:
                return layout
    layout = _detect_v1(mounts, own)
    if layout is None:
        _log.debug("no writable cgroup controllers; limits fall back to rlimits")
    return layout


@functools.cache
def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "0"


def _unit_name() -> str:
    # "<server pid>-<pid namespace>-<n>-<random>": the sweep can tell whose units are orphans.
    return f"{os.getpid()}-{_pid_namespace()}-{next(_counter)}-{secrets.token_hex(3)}"


def _sweep(parent: Path) -> None:
    """Clean up unit cgroups of servers (in our PID namespace) that died: kill what still runs
    there (a sandbox that lost the race with bwrap's --die-with-parent during its setup) and
    remove the directories."""
    try:
        children = [child for child in parent.iterdir() if child.is_dir()]
    except OSError:
        return
    for child in children:
        owner, _, rest = child.name.partition("-")
        namespace = rest.partition("-")[0]
        if not owner.isdigit() or namespace != _pid_namespace() or int(owner) == os.getpid():
            continue
        try:
            os.kill(int(owner), 0)
            continue
        except ProcessLookupError:
            pass
        except OSError:
            continue
        deadline = time.monotonic() + 0.5
        while True:
            for pid in (_read(child / "cgroup.procs") or "").split():
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            try:
                child.rmdir()
                _log.debug("removed the orphaned cgroup %s", child)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() >= deadline:
                    _log.debug("orphaned cgroup %s is still busy", child)
                    break
                time.sleep(0.01)


def format_bytes(value: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= size:
            amount = value / size
            return f"{amount:.0f} {unit}" if amount == int(amount) else f"{amount:.1f} {unit}"
    return f"{value} B"


def _format_cpus(cpus: float) -> str:
    text = f"{cpus:g}"
    return f"{text} CPU" if cpus == 1 else f"{text} CPUs"


class CgroupLimiter:
    """One unit's cgroup (a directory per v1 controller, or one v2 directory) with its CPU,
    memory and pids limits. The child joins it itself before exec (`join_paths`), so none of
    the unit's code runs unconstrained."""

    def __init__(
        self,
        layout: CgroupLayout,
        name: str,
        directories: Mapping[str, Path],
        *,
        cpus: float | None,
        memory_bytes: int | None,
        pids_max: int | None,
    ) -> None:
        self.layout = layout
        self.name = name
        self.directories = dict(directories)
        self.cpus = cpus
        self.memory_bytes = memory_bytes
        self.pids_max = pids_max
        self._removed = False

    @property
    def version(self) -> int:
        return self.layout.version

    @property
    def limits_memory(self) -> bool:
        return self.memory_bytes is not None

    @classmethod
    def create(
        cls,
        *,
        cpus: float = 0,
        memory_bytes: int = 0,
        pids_max: int | None = DEFAULT_PIDS_MAX,
        layout: CgroupLayout | None = None,
    ) -> CgroupLimiter | None:
        """A new unit cgroup with the given limits (0 means unlimited), or None when cgroups
        cannot be used here."""
        layout = layout or detect()
        if layout is None:
            return None
        name = _unit_name()
        directories: dict[str, Path] = {}
        try:
            for parent in dict.fromkeys(layout.parents.values()):
                directory = parent / name
                try:
                    directory.mkdir()
                except FileNotFoundError:  # the parent was removed behind our back
                    parent.mkdir(exist_ok=True)
                    directory.mkdir()
                for controller, controller_parent in layout.parents.items():
                    if controller_parent == parent:
                        directories[controller] = directory
            limiter = cls(
                layout,
                name,
                directories,
                cpus=None,
                memory_bytes=None,
                pids_max=None,
            )
            limiter._apply(cpus, memory_bytes, pids_max)
        except OSError as error:
            _log.debug("cannot set up cgroup %s: %s", name, error)
            for directory in set(directories.values()):
                with contextlib.suppress(OSError):
                    directory.rmdir()
            return None
        return limiter

    def _apply(self, cpus: float, memory_bytes: int, pids_max: int | None) -> None:
        v1 = self.version == 1
        memory = self.directories.get("memory")
        if memory is not None and memory_bytes > 0:
            if v1:
                _write(memory / "memory.limit_in_bytes", str(memory_bytes))
                memsw = memory / "memory.memsw.limit_in_bytes"
                if memsw.exists():  # only with swap accounting; keeps the job out of swap
                    _write(memsw, str(memory_bytes))
            else:
                _write(memory / "memory.max", str(memory_bytes))
                swap = memory / "memory.swap.max"
                if swap.exists():
                    _write(swap, "0")
            self.memory_bytes = memory_bytes
        cpu = self.directories.get("cpu")
        if cpu is not None and cpus > 0:
            if v1:
                period = int((_read(cpu / "cpu.cfs_period_us") or "").strip() or _CPU_PERIOD_US)
                _write(cpu / "cpu.cfs_quota_us", str(max(1000, round(cpus * period))))
            else:
                quota = max(1000, round(cpus * _CPU_PERIOD_US))
                _write(cpu / "cpu.max", f"{quota} {_CPU_PERIOD_US}")
            self.cpus = cpus
        pids = self.directories.get("pids")
        if pids is not None and pids_max:
            _write(pids / "pids.max", str(pids_max))
            self.pids_max = pids_max

    def join_paths(self) -> list[bytes]:
        """The `cgroup.procs` files a child writes its pid to (prepared before the fork, so the
        child does as little as possible)."""
        unique = dict.fromkeys(self.directories.values())
        return [os.fsencode(directory / "cgroup.procs") for directory in unique]

    def describe(self) -> str:
        parts = []
        if self.cpus is not None:
            parts.append(_format_cpus(self.cpus))
        if self.memory_bytes is not None:
            parts.append(format_bytes(self.memory_bytes))
        if self.pids_max is not None:
            parts.append(f"{self.pids_max} processes")
        return f"cgroup v{self.version}: " + (", ".join(parts) or "accounting only")

    def pids(self) -> list[int]:
        """Processes currently in the unit's cgroup."""
        result: set[int] = set()
        for directory in dict.fromkeys(self.directories.values()):
            text = _read(directory / "cgroup.procs") or ""
            result.update(int(line) for line in text.split() if line.isdigit())
        return sorted(result)

    def oom_kills(self) -> int | None:
        """How many processes the kernel OOM-killed in this cgroup, None if unknown."""
        memory = self.directories.get("memory")
        if memory is None:
            return None
        if self.version == 2:
            return _counter_in(_read(memory / "memory.events"), "oom_kill")
        kills = _counter_in(_read(memory / "memory.oom_control"), "oom_kill")
        if kills is not None:
            return kills
        # Kernels before 4.13 lack the counter: hitting the limit is the best evidence left.
        failures = (_read(memory / "memory.failcnt") or "").strip()
        return 1 if failures.isdigit() and int(failures) > 0 else None

    def oom_killed(self) -> bool:
        return (self.oom_kills() or 0) > 0

    def peak_memory_bytes(self) -> int | None:
        memory = self.directories.get("memory")
        if memory is None:
            return None
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        text = (_read(memory / name) or "").strip()
        return int(text) if text.isdigit() else None

    def kill(self) -> None:
        """SIGKILL every process in the cgroup (cgroup.kill on v2 kernels that have it)."""
        if self._removed:
            return
        if self.version == 2:
            kill_file = next(iter(self.directories.values())) / "cgroup.kill"
            if kill_file.exists():
                with contextlib.suppress(OSError):
                    _write(kill_file, "1")
                    return
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def remove(self, timeout: float = 0.0) -> bool:
        """Kill what is left and remove the cgroup directories. Returns False if some process
        was still dying when `timeout` ran out (call again later)."""
        if self._removed:
            return True
        deadline = time.monotonic() + timeout
        while True:
            self.kill()
            busy = False
            for directory in dict.fromkeys(self.directories.values()):
                try:
                    directory.rmdir()
                except FileNotFoundError:
                    pass
                except OSError as error:
                    if error.errno != errno.EBUSY:
                        _log.debug("cannot remove cgroup %s: %s", directory, error)
                    busy = True
            if not busy:
                self._removed = True
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    @property
    def removed(self) -> bool:
        return self._removed


def _counter_in(text: str | None, key: str) -> int | None:
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value.strip())
    return None
