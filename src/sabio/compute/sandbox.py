"""Container-like isolation without a container engine: bubblewrap gives a unit of work a
read-only view of the host, its job directory at a fixed path (`/opt/ml`), a private `/tmp`,
its own PID/IPC/UTS namespaces, generated `/etc/hosts` and, when asked, no network."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import posixpath
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_log = logging.getLogger(__name__)

# Docker's default capability set, which is what a SageMaker container's root user holds: enough
# for ordinary root work in the job directory, not enough to remount the read-only root or to
# write cgroup files and so escape the limits.
_DEFAULT_CAPS = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
# Mounted by bwrap itself (fresh /dev, /proc of the new PID namespace, private /tmp).
_MANAGED = ("/dev", "/proc", "/tmp")


@dataclass(frozen=True)
class Sandbox:
    """What a sandboxed unit sees. `binds` maps a path inside the sandbox to a host path,
    mounted writable; `hosts` adds `/etc/hosts` entries (name -> address)."""

    binds: Mapping[str, Path]
    network: bool = True
    hosts: Mapping[str, str] = field(default_factory=dict)
    hostname: str | None = None
    read_only_root: bool = True
    # Host paths under /tmp to keep visible (read-only) over the private /tmp: interpreters and
    # environments that happen to live there.
    visible_tmp: tuple[Path, ...] = ()


@functools.cache
def bubblewrap_path() -> str | None:
    """The `bwrap` executable if it can actually build a sandbox here, else None. Cached: the
    probe forks a sandbox (about 50 ms) and the answer does not change while we run."""
    path = shutil.which("bwrap")
    if path is None:
        _log.debug("bubblewrap is not installed")
        return None
    probe = [
        path,
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-net",
        "--hostname",
        "sabio-probe",
        "--die-with-parent",
        "true",
    ]
    try:
        result = subprocess.run(
            probe,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as error:
        _log.debug("bubblewrap probe failed: %s", error)
        return None
    if result.returncode != 0:
        _log.debug(
            "bubblewrap cannot create a sandbox here (exit %s): %s",
            result.returncode,
            result.stderr.decode(errors="replace").strip(),
        )
        return None
    return path


def bubblewrap_available() -> bool:
    """Whether `wrap` can be used on this machine (bwrap installed and namespaces allowed)."""
    return bubblewrap_path() is not None


@functools.cache
def bubblewrap_version() -> str | None:
    path = bubblewrap_path()
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.decode(errors="replace").strip() or None


def wrap(
    argv: Sequence[str],
    sandbox: Sandbox,
    *,
    cwd: Path | str,
    scratch_dir: Path | None = None,
) -> list[str]:
    """The bwrap command line that runs `argv` in `sandbox`, starting in `cwd` (a path inside
    the sandbox). Generated files (the hosts file) are written to `scratch_dir`.

    The process group is left alone (no `--new-session`) so the backend can signal every
    process of the unit; the backend's own `setsid` already detaches it from any terminal."""
    bwrap = bubblewrap_path() or shutil.which("bwrap") or "bwrap"
    binds = _normalized_binds(sandbox.binds)
    args: list[str] = [bwrap]
    synthesized = _synthesized_dirs(binds) if sandbox.read_only_root else set()
    if not sandbox.read_only_root:
        args += ["--bind", "/", "/"]
    elif "/" in synthesized:
        args += _mirror("/", skip=_MANAGED)
    else:
        args += ["--ro-bind", "/", "/"]
    args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for path in sorted(p for p in {*sandbox.visible_tmp, *_interpreter_paths()} if _under_tmp(p)):
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    for directory in sorted(synthesized - {"/"}, key=_depth):
        args += ["--tmpfs", directory, *_mirror(directory)]
    for target in sorted(binds, key=_depth):
        args += ["--bind", str(binds[target]), target]
    hosts_file = _write_hosts(sandbox, scratch_dir)
    args += ["--ro-bind", str(hosts_file), "/etc/hosts"]
    for directory in sorted(synthesized, key=_depth, reverse=True):
        args += ["--remount-ro", directory]
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    if sandbox.hostname:
        args += ["--hostname", sandbox.hostname]
    if not sandbox.network:
        args += ["--unshare-net"]
    if os.geteuid() == 0:
        args += ["--cap-drop", "ALL"]
        for cap in _DEFAULT_CAPS:
            args += ["--cap-add", cap]
    args += [
        "--die-with-parent",
        "--setenv",
        "TMPDIR",
        "/tmp",
        "--chdir",
        str(cwd),
        "--",
        *argv,
    ]
    return args


def hosts_content(sandbox: Sandbox, base: str | None = None) -> str:
    """The sandbox's /etc/hosts: its own names first (the resolver takes the first match), then
    the host's entries."""
    if base is None:
        try:
            base = Path("/etc/hosts").read_text(errors="replace")
        except OSError:
            base = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
    lines = ["# generated by sabio for a sandboxed unit of work"]
    names = dict(sandbox.hosts)
    if sandbox.hostname and sandbox.hostname not in names:
        names[sandbox.hostname] = "127.0.0.1"
    for name, address in names.items():
        if not name or any(c.isspace() for c in name + address):
            raise ValueError(f"invalid hosts entry {name!r} -> {address!r}")
        lines.append(f"{address}\t{name}")
    return "\n".join(lines) + "\n" + base.rstrip("\n") + "\n"


def _write_hosts(sandbox: Sandbox, scratch_dir: Path | None) -> Path:
    content = hosts_content(sandbox).encode()
    directory = scratch_dir or Path(tempfile.gettempdir()) / "sabio-sandbox"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Content-addressed: instances of one job share the file, and it is never rewritten while a
    # sandbox has it mounted.
    path = directory / f"hosts-{hashlib.sha256(content).hexdigest()[:16]}"
    if not path.exists():
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".hosts-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    return path


def _normalized_binds(binds: Mapping[str, Path]) -> dict[str, Path]:
    result: dict[str, Path] = {}
    for target, source in binds.items():
        normalized = posixpath.normpath(target)
        if not normalized.startswith("/") or normalized in ("/", "//"):
            raise ValueError(f"bind target must be an absolute path below /: {target!r}")
        if normalized == "/etc/hosts" or _within(normalized, ("/proc", "/dev")):
            raise ValueError(f"bind target {target!r} is managed by the sandbox")
        host = Path(source).absolute()
        if not host.exists():
            raise FileNotFoundError(f"bind source {host} (for {target}) does not exist")
        result[normalized] = host
    return result


def _synthesized_dirs(binds: Mapping[str, Path]) -> set[str]:
    """Directories that must become a writable tmpfs mirroring the host, because a bind target
    below them does not exist on the read-only host root (such as /opt/ml) and bwrap can only
    create mount points in a writable place."""
    result: set[str] = set()
    for target in binds:
        if _within(target, _MANAGED):
            continue
        if any(other != target and _within(target, (other,)) for other in binds):
            continue  # inside a writable bind: bwrap creates the mount point there
        if os.path.lexists(target):
            continue
        existing = posixpath.dirname(target)
        while existing != "/" and not os.path.isdir(existing):
            existing = posixpath.dirname(existing)
        result.add(existing)
    return result


def _mirror(directory: str, skip: Iterable[str] = ()) -> list[str]:
    """Arguments recreating the host's entries of `directory`, read-only, on a fresh tmpfs."""
    skipped = set(skip)
    args: list[str] = []
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError:
        return args
    for entry in entries:
        path = posixpath.join(directory, entry.name)
        if path in skipped:
            continue
        if entry.is_symlink():
            args += ["--symlink", os.readlink(path), path]
        else:
            args += ["--ro-bind-try", path, path]
    return args


def _within(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _depth(path: str) -> int:
    return 0 if path == "/" else path.count("/")


def _under_tmp(path: Path) -> bool:
    return path.is_relative_to("/tmp")


@functools.cache
def _interpreter_paths() -> frozenset[Path]:
    """The running interpreter and its packages: a unit started from them must still find them
    when they live under /tmp, which the sandbox replaces with a private one."""
    return frozenset(Path(p) for p in (sys.prefix, sys.base_prefix, *sys.path) if p)
