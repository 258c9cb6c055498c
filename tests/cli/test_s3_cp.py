"""`sabio s3 cp` as a user runs it: the real CLI in a subprocess, against a private --home.

Each CLI start costs seconds of imports, so the module runs its commands up front, in two
concurrent batches (uploads and failures, then downloads of what was uploaded), and the tests
check the outcomes."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sabio.artifacts.local import LocalArtifactStore
from sabio.artifacts.uri import parse

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # 1 MiB and a bit: more than one copy chunk
TREE = {
    "top.txt": b"top",
    "sub/inner.bin": b"\x00\x01\x02",
    "sub/deeper/leaf.json": b'{"leaf": true}',
    "empty.txt": b"",
}


@dataclass
class Workspace:
    cwd: Path
    home: Path
    results: dict[str, subprocess.CompletedProcess[str]]

    @property
    def store(self) -> LocalArtifactStore:
        return LocalArtifactStore(self.home / "artifacts")


def run_concurrently(
    commands: dict[str, list[str]], cwd: Path, home: Path
) -> dict[str, subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SABIO_")}
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-m", "sabio", "s3", "cp", *args, "--home", str(home)],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in commands.items()
    }
    results = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=120)
        results[name] = subprocess.CompletedProcess(
            process.args, process.returncode, stdout, stderr
        )
    return results


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    cwd = tmp_path_factory.mktemp("s3-cp")
    home = cwd / "home"
    (cwd / "file.bin").write_bytes(PAYLOAD)
    (cwd / "notes.txt").write_text("keep my name\n")
    for relative, data in TREE.items():
        (cwd / "tree" / relative).parent.mkdir(parents=True, exist_ok=True)
        (cwd / "tree" / relative).write_bytes(data)
    (cwd / "local-copy-target").mkdir()

    results = run_concurrently(
        {
            "upload": ["file.bin", "s3://bucket/data/file.bin"],
            "upload_to_prefix": ["notes.txt", "s3://bucket/docs/"],
            "upload_recursive": ["--recursive", "tree", "s3://bucket/tree"],
            "local_to_local": ["file.bin", "local-copy-target/file.bin"],
            "missing_source": ["s3://bucket/no/such/key", "missing-download"],
            "escaping_key": ["file.bin", "s3://bucket/../outside"],
        },
        cwd,
        home,
    )
    # A sibling whose key merely starts with the recursive download's prefix.
    LocalArtifactStore(home / "artifacts").upload_file(
        cwd / "notes.txt", parse("s3://bucket/treehouse/sibling.txt")
    )
    results |= run_concurrently(
        {
            "download": ["s3://bucket/data/file.bin", "out/copy.bin"],
            "download_recursive": ["s3://bucket/tree", "tree-copy", "--recursive"],
        },
        cwd,
        home,
    )
    return Workspace(cwd, home, results)


def succeeded(workspace: Workspace, name: str) -> str:
    result = workspace.results[name]
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def test_upload_a_file(workspace: Workspace) -> None:
    stdout = succeeded(workspace, "upload")
    assert stdout == "upload: file.bin to s3://bucket/data/file.bin\n"
    assert (workspace.home / "artifacts" / "bucket" / "data" / "file.bin").read_bytes() == PAYLOAD


def test_upload_to_a_prefix_keeps_the_file_name(workspace: Workspace) -> None:
    stdout = succeeded(workspace, "upload_to_prefix")
    assert stdout == "upload: notes.txt to s3://bucket/docs/notes.txt\n"
    with workspace.store.open_read(parse("s3://bucket/docs/notes.txt")) as stream:
        assert stream.read() == b"keep my name\n"


def test_download_back(workspace: Workspace) -> None:
    stdout = succeeded(workspace, "download")
    assert stdout == "download: s3://bucket/data/file.bin to out/copy.bin\n"
    assert (workspace.cwd / "out" / "copy.bin").read_bytes() == PAYLOAD
    assert [p.name for p in (workspace.cwd / "out").iterdir()] == ["copy.bin"]


def test_recursive_upload(workspace: Workspace) -> None:
    stdout = succeeded(workspace, "upload_recursive")
    assert len(stdout.splitlines()) == len(TREE)
    uploaded = {
        info.uri.key: info.size for info in workspace.store.list(parse("s3://bucket/tree/"))
    }
    assert uploaded == {f"tree/{k}": len(v) for k, v in TREE.items()}


def test_recursive_download(workspace: Workspace) -> None:
    succeeded(workspace, "download_recursive")
    copy = workspace.cwd / "tree-copy"
    downloaded = {
        p.relative_to(copy).as_posix(): p.read_bytes() for p in copy.rglob("*") if p.is_file()
    }
    # Only what is under `tree/`: not `treehouse/sibling.txt` (as `house/sibling.txt`).
    assert downloaded == TREE


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("local_to_local", "one of each"),
        ("missing_source", "s3://bucket/no/such/key does not exist"),
        ("escaping_key", "must not contain '.' or '..'"),
    ],
)
def test_errors_are_one_line_without_traceback(
    workspace: Workspace, name: str, message: str
) -> None:
    result = workspace.results[name]
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sabio: ")
    assert message in lines[0]


def test_failed_copies_wrote_nothing(workspace: Workspace) -> None:
    assert not (workspace.cwd / "missing-download").exists()
    assert list((workspace.cwd / "local-copy-target").iterdir()) == []
    assert not (workspace.home / "artifacts" / "outside").exists()
