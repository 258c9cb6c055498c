"""What the benchmarks share: a real Sabio server in a temporary home, boto3 pointed at it,
files copied into its artifact store, model archives, percentiles, and a description of the
machine and of the load on it."""

from __future__ import annotations

import io
import os
import platform
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Server:
    home: Path
    port: int

    def copy(self, source: Path, uri: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "sabio", "s3", "cp", "--home", str(self.home), str(source), uri],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def pid(self) -> int:
        """The server's process id, found by its command line (it runs `--home <home>`)."""
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    argv = (entry / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"server" in argv and str(self.home).encode() in argv:
                    return int(entry.name)
        raise RuntimeError("the Sabio server process was not found")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def sabio_server() -> Iterator[Server]:
    """A server on a free port; boto3 in this process talks to it through AWS_ENDPOINT_URL."""
    home = Path(tempfile.mkdtemp(prefix="sabio-bench-"))
    port = free_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    with (home / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sabio", "server", "--port", str(port), "--home", str(home)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SABIO_LOG_LEVEL": "warning"},
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield Server(home, port)
        finally:
            process.terminate()
            process.wait(timeout=60)


def tar_gz(path: Path, files: dict[str, bytes]) -> Path:
    """A gzipped tar at `path` holding `files` (archive name to contents)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def tree_sum(root: int, measure: Callable[[str, list[str]], float]) -> float:
    """The sum of `measure(proc_dir, stat_fields)` over `root` and its live descendants, where
    `stat_fields` are the fields of `/proc/<pid>/stat` after the command name (state first);
    a process that ends while it is read counts for nothing."""
    parents: dict[int, int] = {}
    values: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            value = measure(entry.path, fields)
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        values[pid] = value
    total, frontier = 0.0, [root]
    while frontier:
        pid = frontier.pop()
        total += values.get(pid, 0.0)
        frontier.extend(child for child, parent in parents.items() if parent == pid)
    return total


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (
        f"{os.cpu_count()} cores ({model}), {memory:.0f} GiB, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def cpu_pressure() -> str:
    """How much other processes competed for the CPU (Linux pressure stall information)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return "not measured"
    fields = dict(part.split("=") for part in line.split()[1:])
    return f"runnable tasks waited for a CPU {fields.get('avg60', '?')}% of the last minute"


def write_section(name: str, title: str, lines: list[str]) -> None:
    """Replace (or add) one marked section of docs/benchmarks.md."""
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    section = "\n".join([start, f"## {title}", "", *lines, end])
    if start in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)
