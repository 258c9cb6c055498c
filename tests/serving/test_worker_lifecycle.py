"""The model worker process lifecycle: serving on a Unix socket, graceful SIGTERM, load and bind
failures reported with a reason and an exit status, and where user code is looked up."""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from pathlib import Path

import pytest

from sabio.serving.worker.handlers import resolve_code_dir
from support.worker import SETOSA, Worker, archive


def test_unix_domain_socket_and_graceful_sigterm(fleet: dict[str, Worker]) -> None:
    worker = fleet["uds"].wait_ready()
    assert worker.uds is not None
    assert worker.uds.is_socket()
    reply = worker.invoke(json.dumps([SETOSA]))
    assert (reply.status, reply.body) == (200, b"[0]")
    assert worker.stop() == 0
    assert not worker.uds.exists()


def _failing_worker(
    tmp_path: Path, files: Mapping[str, bytes | str], *args: str
) -> tuple[int, str, Worker]:
    failure = tmp_path / "status" / "failure"
    data = archive(tmp_path / "model.tar.gz", files)
    argv = ["--model-data", str(data), f"--model-dir={tmp_path}/model", f"--failure-file={failure}"]
    worker = Worker(tmp_path, [*argv, *args])
    try:
        code = worker.process.wait(timeout=60)
    finally:
        worker.stop()
    return code, failure.read_text(), worker


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        (
            {"code/inference.py": "def model_fn(model_dir):\n    raise ValueError('bad weights')"},
            "model_fn raised ValueError: bad weights",
        ),
        (
            {"code/inference.py": "import not_installed_anywhere\n"},
            "raised ModuleNotFoundError: No module named 'not_installed_anywhere'",
        ),
        (
            {"code/inference.py": "def transform_fn(m, d, c, a): ...\ndef predict_fn(d, m): ...\n"},
            "defines transform_fn together with predict_fn",
        ),
        (
            {"code/inference.py": "def input_fn(data):\n    return data\n"},
            "input_fn must take 2 positional argument(s), or 3 with a trailing context",
        ),
        ({"notes.txt": "no model"}, "No model found in"),
        ({"../escape.txt": "x"}, "Cannot extract"),
    ],
    ids=[
        "model-fn-raises",
        "import-error",
        "transform-and-chain",
        "signature",
        "no-model",
        "unsafe-tar",
    ],
)
def test_load_failure_exits_quickly_with_a_reason(
    tmp_path: Path, files: Mapping[str, bytes | str], reason: str
) -> None:
    code, text, worker = _failing_worker(tmp_path, files, "--port=0")
    assert code == 2, worker.logs()
    assert reason in text
    assert text.endswith("\n")
    assert text.count("\n") == 1
    assert "Traceback" in worker.logs()
    assert not (tmp_path / "escape.txt").exists()


def test_bind_failure_is_reported(tmp_path: Path) -> None:
    code_py = (
        "def model_fn(model_dir):\n    return {}\n\ndef transform_fn(m, d, c, a):\n    return d\n"
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, text, worker = _failing_worker(
            tmp_path, {"code/inference.py": code_py}, f"--port={port}"
        )
    assert code == 3, worker.logs()
    assert f"Cannot listen on 127.0.0.1:{port}" in text


def test_submit_directory_resolution(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "src").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert resolve_code_dir(model_dir, {}) == model_dir / "code"
    assert resolve_code_dir(model_dir, {"SAGEMAKER_SUBMIT_DIRECTORY": str(elsewhere)}) == elsewhere
    remapped = {"SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/src"}
    assert resolve_code_dir(model_dir, remapped) == model_dir / "src"
    remote = {"SAGEMAKER_SUBMIT_DIRECTORY": "s3://bucket/sourcedir.tar.gz"}
    assert resolve_code_dir(model_dir, remote) == model_dir / "code"
