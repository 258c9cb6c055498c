"""The local backend with real processes: bubblewrap sandboxes (/opt/ml bind, network cut, hosts),
cgroup limits (OOM kill, CPU quota, cleanup), the rlimit fallback and stopping whole trees."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sabio.compute import cgroups
from sabio.compute.local import LocalBackend, LocalProcess, WorkUnit
from sabio.compute.sandbox import Sandbox, bubblewrap_available, hosts_content, wrap

MiB = 1024**2
GiB = 1024**3

needs_bwrap = pytest.mark.skipif(
    not bubblewrap_available(),
    reason="bubblewrap is missing or cannot create namespaces here (apt-get install bubblewrap)",
)


def _controller(name: str) -> bool:
    layout = cgroups.detect()
    return layout is not None and name in layout.parents


needs_cgroup_memory = pytest.mark.skipif(
    not _controller("memory"), reason="no writable cgroup memory controller on this machine"
)
needs_cgroup_cpu = pytest.mark.skipif(
    not _controller("cpu"), reason="no writable cgroup cpu controller on this machine"
)


class Runner:
    """Starts units for a test and stops every one of them afterwards, even on failure."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.backend = LocalBackend()
        self.started: list[LocalProcess] = []

    def start(
        self,
        code: str,
        *,
        sandbox: Sandbox | None = None,
        cwd: Path | None = None,
        cpus: float = 1,
        memory_bytes: int = 0,
        use_cgroups: bool = True,
    ) -> LocalProcess:
        log = self.tmp_path / f"unit-{len(self.started)}.log"
        unit = WorkUnit(
            [sys.executable, "-c", textwrap.dedent(code)],
            {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            cwd or (Path("/") if sandbox else self.tmp_path),
            log,
            cpus,
            memory_bytes,
            sandbox=sandbox,
            use_cgroups=use_cgroups,
        )
        process = self.backend.start(unit)
        self.started.append(process)
        return process

    def run(self, code: str, timeout: float = 10, **options: Any) -> tuple[int, str]:
        process = self.start(code, **options)
        code_ = asyncio.run(asyncio.wait_for(process.wait(), timeout))
        return code_, process.unit.log_path.read_text()

    def close(self) -> None:
        for process in self.started:
            asyncio.run(process.stop(0.1))


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    running = Runner(tmp_path)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    path = tmp_path / "job"
    path.mkdir()
    return path


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0) until its parent reaps it.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def _wait_for_file(path: Path, timeout: float = 5) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text()
        time.sleep(0.01)
    raise AssertionError(f"{path} was not written within {timeout} s")


# -- sandbox --------------------------------------------------------------------------------


@needs_bwrap
def test_job_dir_is_bound_at_opt_ml(runner: Runner, job_dir: Path) -> None:
    (job_dir / "input.txt").write_text("from the host")
    sandbox = Sandbox({"/opt/ml": job_dir})
    private = Path("/tmp") / f"sabio-private-{uuid.uuid4().hex[:8]}"
    code, log = runner.run(
        f"""
        import os
        print(os.getcwd(), open("/opt/ml/input.txt").read())
        open("/opt/ml/output.txt", "w").write("from the job")
        open({str(private)!r}, "w").write("x")
        print(sorted(os.listdir("/opt")))
        for path in ("/usr/sabio-test", "/opt/sabio-test"):
            try:
                open(path, "w")
            except OSError as error:
                print(path, error.strerror)
        """,
        sandbox=sandbox,
        cwd=Path("/opt/ml"),
    )
    assert code == 0, log
    assert "/opt/ml from the host" in log
    assert "/usr/sabio-test Read-only file system" in log
    assert "/opt/sabio-test Read-only file system" in log
    assert (job_dir / "output.txt").read_text() == "from the job"
    # Host directories beside /opt/ml stay visible (an interpreter may live there).
    host_opt = sorted({*os.listdir("/opt"), "ml"}) if Path("/opt").is_dir() else ["ml"]
    assert str(host_opt) in log
    assert not private.exists()  # the sandbox's /tmp is its own


@needs_bwrap
def test_bind_below_a_directory_missing_on_the_host(runner: Runner, job_dir: Path) -> None:
    target = f"/sabio-test-{uuid.uuid4().hex[:8]}/data"
    assert not Path(target).parent.exists()
    (job_dir / "x").write_text("ok")
    code, log = runner.run(
        f"print(open({target!r} + '/x').read())",
        sandbox=Sandbox({target: job_dir}),
    )
    assert code == 0, log
    assert log.strip() == "ok"
    assert not Path(target).parent.exists()


@needs_bwrap
@pytest.mark.parametrize("network", [True, False])
def test_network_isolation(runner: Runner, job_dir: Path, network: bool) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        probe = f"""
            import socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
                print("connected")
            except OSError as error:
                print("failed", error)
            """
        outside, outside_log = runner.run(probe)
        inside, inside_log = runner.run(probe, sandbox=Sandbox({"/opt/ml": job_dir}, network))
    assert outside == 0
    assert "connected" in outside_log
    assert inside == 0, inside_log
    assert ("connected" in inside_log) is network, inside_log


@needs_bwrap
def test_instances_resolve_each_other(runner: Runner, job_dir: Path) -> None:
    hosts = {"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}
    sandbox = Sandbox({"/opt/ml": job_dir}, network=False, hosts=hosts, hostname="algo-1")
    code, log = runner.run(
        'import socket; print(socket.gethostname(), socket.gethostbyname("algo-2"))',
        sandbox=sandbox,
    )
    assert code == 0, log
    assert log.split() == ["algo-1", "127.0.0.1"]


def test_hosts_content_puts_the_job_names_first() -> None:
    sandbox = Sandbox({}, hosts={"algo-2": "127.0.0.1"}, hostname="algo-1")
    text = hosts_content(sandbox, base="10.0.0.9 algo-2\n")
    lines = [line.split() for line in text.splitlines() if not line.startswith("#")]
    assert lines == [["127.0.0.1", "algo-2"], ["127.0.0.1", "algo-1"], ["10.0.0.9", "algo-2"]]
    with pytest.raises(ValueError, match="invalid hosts entry"):
        hosts_content(Sandbox({}, hosts={"a b": "127.0.0.1"}), base="")


def test_wrap_rejects_bad_binds(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="absolute"):
        wrap(["true"], Sandbox({"opt/ml": tmp_path}), cwd="/")
    with pytest.raises(FileNotFoundError):
        wrap(["true"], Sandbox({"/opt/ml": tmp_path / "missing"}), cwd="/")


@needs_bwrap
def test_sandboxed_code_gets_sigterm_and_its_grace_period(runner: Runner, job_dir: Path) -> None:
    process = runner.start(
        """
        import signal, sys, time
        def stop(*_):
            time.sleep(0.3)  # still alive after the monitor would have died
            open("/opt/ml/stopped", "w").write("clean")
            sys.exit(3)
        signal.signal(signal.SIGTERM, stop)
        open("/opt/ml/ready", "w").write("\\n")
        time.sleep(30)
        """,
        sandbox=Sandbox({"/opt/ml": job_dir}),
    )
    _wait_for_file(job_dir / "ready")
    assert asyncio.run(process.stop(5)) == 3
    assert (job_dir / "stopped").read_text() == "clean"
    assert process.termination_signal is None


# -- cgroups --------------------------------------------------------------------------------


@needs_cgroup_memory
@pytest.mark.parametrize("sandboxed", [False, True])
def test_memory_limit_ooms(runner: Runner, job_dir: Path, sandboxed: bool) -> None:
    if sandboxed and not bubblewrap_available():
        pytest.skip("bubblewrap is not available")
    code, log = runner.run(
        """
        chunks = []
        for _ in range(20):  # 1.25 GiB, each chunk touched
            chunks.append(b"x" * (64 * 1024 * 1024))
        print("survived")
        """,
        memory_bytes=256 * MiB,
        sandbox=Sandbox({"/opt/ml": job_dir}) if sandboxed else None,
    )
    process = runner.started[-1]
    assert "survived" not in log
    assert process.oom_killed()
    assert process.termination_signal == signal.SIGKILL
    assert code == (128 + signal.SIGKILL if sandboxed else -signal.SIGKILL)
    peak = process.peak_memory_bytes()
    assert peak is not None
    assert 128 * MiB < peak <= 257 * MiB
    assert "256 MiB" in process.limits_description()


@needs_cgroup_cpu
def test_cpu_quota_throttles(runner: Runner) -> None:
    code, log = runner.run(
        """
        import time
        wall, cpu = time.monotonic(), time.process_time()
        while time.monotonic() - wall < 1.0:
            pass
        print((time.process_time() - cpu) / (time.monotonic() - wall))
        """,
        cpus=0.5,
    )
    assert code == 0, log
    share = float(log.strip())
    assert 0.05 < share < 0.62, share
    assert runner.started[-1].limits_description().startswith("cgroup v")


@needs_cgroup_memory
def test_cgroup_is_removed_after_stop_and_after_exit(runner: Runner) -> None:
    sleeper = runner.start("import time; time.sleep(30)", memory_bytes=512 * MiB)
    limiter = sleeper._cgroup
    assert limiter is not None
    directories = set(limiter.directories.values())
    assert all(path.is_dir() for path in directories)
    assert sleeper.pid in limiter.pids()
    assert asyncio.run(sleeper.stop(1)) == -signal.SIGTERM
    assert not any(path.exists() for path in directories)

    quick = runner.start("print('done')", memory_bytes=512 * MiB)
    assert quick._cgroup is not None
    directories = set(quick._cgroup.directories.values())
    assert asyncio.run(quick.wait()) == 0
    assert not any(path.exists() for path in directories)
    assert not quick.oom_killed()


def test_rlimit_fallback_without_cgroups(runner: Runner) -> None:
    code, log = runner.run(
        "buffer = bytearray(8 * 1024**3)\nprint('allocated')",
        memory_bytes=256 * MiB,
        use_cgroups=False,
    )
    process = runner.started[-1]
    assert code != 0
    assert "MemoryError" in log
    assert "allocated" not in log
    assert process.limits_description() == "rlimits: 4 GiB address space"
    assert not process.oom_killed()
    assert process.peak_memory_bytes() is None


# -- stopping -------------------------------------------------------------------------------


@pytest.mark.parametrize("use_cgroups", [False, True])
def test_stop_kills_the_whole_tree(runner: Runner, tmp_path: Path, use_cgroups: bool) -> None:
    if use_cgroups and cgroups.detect() is None:
        pytest.skip("no writable cgroups on this machine")
    pids_file = tmp_path / "pids"
    # A child that ignores SIGTERM, a grandchild below it, and (with cgroups) one that escaped
    # the process group with setsid: only the cgroup still knows about that one.
    escape = "start_new_session=True" if use_cgroups else "start_new_session=False"
    process = runner.start(
        f"""
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        grandchild = (
            "import subprocess, sys, time; "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "print(p.pid, flush=True); time.sleep(60)"
        )
        child = subprocess.Popen(
            [sys.executable, "-c", grandchild], stdout=subprocess.PIPE, text=True, {escape}
        )
        great = child.stdout.readline().strip()
        with open({str(pids_file)!r}, "w") as f:
            f.write(f"{{child.pid}} {{great}}\\n")
        time.sleep(60)
        """,
        use_cgroups=use_cgroups,
    )
    pids = [int(pid) for pid in _wait_for_file(pids_file).split()]
    assert len(pids) == 2
    assert not any(_gone(pid) for pid in pids)
    started = time.monotonic()
    assert asyncio.run(process.stop(0.3)) == -signal.SIGKILL
    assert time.monotonic() - started < 3
    deadline = time.monotonic() + 3
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(_gone(pid) for pid in pids)


def test_cgroup_mounts_and_membership_are_parsed() -> None:
    mountinfo = (
        "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
    )
    mounts = cgroups._mounts(mountinfo)
    assert [(m.fstype, str(m.mountpoint)) for m in mounts] == [
        ("cgroup2", "/sys/fs/cgroup"),
        ("cgroup", "/sys/fs/cgroup/cpu,cpuacct"),
    ]
    assert {"cpu", "cpuacct"} <= mounts[1].options
    own = cgroups._own_cgroups("2:cpu,cpuacct:/jobs\n1:name=systemd:/\n0::/user.slice/s.scope\n")
    assert own["cpu"] == own["cpuacct"] == "/jobs"
    assert own[""] == "/user.slice/s.scope"


@needs_bwrap
def test_sandbox_dies_with_the_server(tmp_path: Path, job_dir: Path) -> None:
    token = f"sabio-orphan-{uuid.uuid4().hex}"
    # Killed once the payload runs: while bwrap is still building the sandbox, its child is not
    # yet tied to it (a bubblewrap race that the cgroup sweep at the next start cleans up).
    payload = f"open('/opt/ml/running', 'w').write('\\n'); import time; time.sleep(60)  # {token}"
    server = tmp_path / "server.py"
    server.write_text(
        textwrap.dedent(
            f"""
            import asyncio, sys, time
            from pathlib import Path
            from sabio.compute.local import LocalBackend, WorkUnit
            from sabio.compute.sandbox import Sandbox

            async def main():
                unit = WorkUnit(
                    [sys.executable, "-c", {payload!r}],
                    {{}}, Path("/"), Path({str(tmp_path / "unit.log")!r}),
                    sandbox=Sandbox({{"/opt/ml": Path({str(job_dir)!r})}}),
                )
                LocalBackend().start(unit)
                print("started", flush=True)
                await asyncio.sleep(60)

            asyncio.run(main())
            """
        )
    )

    def orphans() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and token.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    with subprocess.Popen([sys.executable, str(server)], stdout=subprocess.PIPE) as parent:
        try:
            assert parent.stdout is not None
            assert parent.stdout.readline().strip() == b"started"
            _wait_for_file(job_dir / "running")
            assert orphans()
        finally:
            parent.kill()
            parent.wait()
    deadline = time.monotonic() + 5
    while orphans() and time.monotonic() < deadline:
        time.sleep(0.02)
    leftovers = orphans()
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    assert not leftovers


def test_next_server_kills_what_a_dead_server_left_in_its_cgroups(tmp_path: Path) -> None:
    if cgroups.detect() is None:
        pytest.skip("no writable cgroups on this machine")
    pid_file = tmp_path / "escaped"
    # The unit's main process dies with the server (parent-death signal), but a grandchild in
    # a session of its own survives it: only its cgroup still ties it to the dead server.
    payload = textwrap.dedent(
        f"""
        import subprocess, sys, time
        p = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
        )
        open({str(pid_file)!r}, "w").write(f"{{p.pid}}\\n")
        time.sleep(60)
        """
    )
    server = tmp_path / "server.py"
    server.write_text(
        textwrap.dedent(
            f"""
            import asyncio, sys
            from pathlib import Path
            from sabio.compute.local import LocalBackend, WorkUnit

            async def main():
                unit = WorkUnit([sys.executable, "-c", {payload!r}], {{}}, Path("/"),
                                Path({str(tmp_path / "unit.log")!r}), memory_bytes=256 << 20)
                LocalBackend().start(unit)
                await asyncio.sleep(60)

            asyncio.run(main())
            """
        )
    )
    escaped = 0
    try:
        with subprocess.Popen([sys.executable, str(server)]) as parent:
            try:
                escaped = int(_wait_for_file(pid_file))
            finally:
                parent.kill()
                parent.wait()
        time.sleep(0.1)
        assert not _gone(escaped)
        subprocess.run(
            [sys.executable, "-c", "from sabio.compute import cgroups; cgroups.detect()"],
            check=True,
            timeout=10,
        )
        deadline = time.monotonic() + 3
        while not _gone(escaped) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _gone(escaped)
    finally:
        if escaped and not _gone(escaped):
            os.kill(escaped, signal.SIGKILL)


def test_writable_root_is_opt_in(tmp_path: Path) -> None:
    argv = wrap(["true"], Sandbox({}, read_only_root=False), cwd="/", scratch_dir=tmp_path)
    assert argv[1:4] == ["--bind", "/", "/"]
    assert "--remount-ro" not in argv
    assert "--unshare-net" not in argv
    assert argv[-2:] == ["--", "true"]
