"""Building `/opt/ml` trees, running built-in algorithms on them, and serving what they train.

Training runs as the platform runs it, `python -m sabio.algorithms.<module> train` with
`SABIO_OPT_ML`; several jobs start at once so their interpreter start-ups overlap.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import regex

from sabio.serving.worker.codecs import CodecError
from sabio.serving.worker.service import Service

TRAIN_TIMEOUT = 120.0
START_TIMEOUT = 90.0


def csv_text(labels: np.ndarray[Any, Any], features: np.ndarray[Any, Any]) -> str:
    """Rows of `label,feature,...` without a header, as the built-in algorithms read CSV."""
    rows = np.column_stack([labels, features])
    return "".join(",".join(f"{value:.10g}" for value in row) + "\n" for row in rows)


def features_csv(features: np.ndarray[Any, Any]) -> str:
    return "".join(",".join(f"{value:.10g}" for value in row) + "\n" for row in features)


def libsvm_text(labels: np.ndarray[Any, Any], features: np.ndarray[Any, Any]) -> str:
    lines = []
    for label, row in zip(labels, features, strict=True):
        pairs = " ".join(f"{index}:{value:.10g}" for index, value in enumerate(row) if value)
        lines.append(f"{label:g} {pairs}\n")
    return "".join(lines)


@dataclass
class Channel:
    files: Mapping[str, str | bytes]
    content_type: str | None = None


def write_tree(
    root: Path, hyperparameters: Mapping[str, str], channels: Mapping[str, Channel]
) -> Path:
    """An `/opt/ml` tree as the job controller lays it out."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (root / "model").mkdir()
    (root / "output" / "data").mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(dict(hyperparameters)))
    data_config: dict[str, dict[str, str]] = {}
    for name, channel in channels.items():
        data_config[name] = {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}
        if channel.content_type is not None:
            data_config[name]["ContentType"] = channel.content_type
        for relative, content in channel.files.items():
            path = root / "input" / "data" / name / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
    (config / "inputdataconfig.json").write_text(json.dumps(data_config))
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
    )
    return root


@dataclass
class Result:
    root: Path
    returncode: int
    log: str

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def failure(self) -> str | None:
        path = self.root / "output" / "failure"
        return path.read_text() if path.exists() else None


class TrainingRun:
    """One `python -m sabio.algorithms.<module> train` process."""

    def __init__(self, module: str, root: Path) -> None:
        self.root = root
        self.log_path = root.parent / f"{root.name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGEMAKER_", "SM_"))}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", f"sabio.algorithms.{module}", "train"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**env, "SABIO_OPT_ML": str(root)},
                cwd=root,
            )

    def wait(self) -> Result:
        try:
            self.process.wait(timeout=TRAIN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return Result(self.root, self.process.returncode, self.log_path.read_text())


def train_all(module: str, roots: Mapping[str, Path]) -> dict[str, Result]:
    """Train on every tree at once and insist each run succeeded."""
    runs = {name: TrainingRun(module, root) for name, root in roots.items()}
    results = {name: run.wait() for name, run in runs.items()}
    for name, result in results.items():
        assert result.returncode == 0, f"{name}:\n{result.log}"
    return results


def metric_values(log: str, definitions: Sequence[Mapping[str, str]]) -> dict[str, list[float]]:
    """Every value each definition extracts from the log, line by line, as the platform does."""
    compiled = [(d["Name"], regex.compile(d["Regex"])) for d in definitions]
    found: dict[str, list[float]] = {}
    for line in log.splitlines():
        for name, pattern in compiled:
            match = pattern.search(line)
            if match:
                found.setdefault(name, []).append(float(match.group(1)))
    return found


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


def load_service(model_dir: Path) -> Service:
    """The model as the worker loads it, in this process."""
    return Service.load(model_dir, {})


def invoke(
    service: Service, body: str | bytes, content_type: str | None = None, accept: str | None = None
) -> Reply:
    """One invocation, with the status the worker would answer (see worker/app.py)."""
    headers = []
    if content_type is not None:
        headers.append((b"content-type", content_type.encode()))
    if accept is not None:
        headers.append((b"accept", accept.encode()))
    raw = body.encode() if isinstance(body, str) else body
    try:
        payload, response_type, _ = service.invoke(raw, content_type, accept, headers)
    except CodecError as exc:
        return Reply(exc.status, str(exc).encode(), "text/plain")
    except Exception as exc:
        status = getattr(exc, "status_code", 500)
        return Reply(status, str(exc).encode(), "text/plain")
    return Reply(200, payload, response_type)


class Worker:
    """`python -m sabio.serving.worker` on a model directory and a free loopback port."""

    def __init__(self, model_dir: Path, log_path: Path) -> None:
        self.log_path = log_path
        self.port: int | None = None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGEMAKER_", "SM_"))}
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    *("-m", "sabio.serving.worker"),
                    *("--model-dir", str(model_dir), "--port", "0"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> Worker:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"worker exited with {self.process.returncode}:\n{self.logs()}"
                )
            if self.port is None:
                found = re.search(r"Serving .* on http://127\.0\.0\.1:(\d+)", self.logs())
                self.port = int(found.group(1)) if found else None
            if self.port is not None:
                try:
                    if self.request("GET", "/ping").status == 200:
                        return self
                except OSError:
                    pass
            time.sleep(0.05)
        raise AssertionError(f"worker not ready after {START_TIMEOUT}s:\n{self.logs()}")

    def request(
        self,
        method: str,
        path: str,
        body: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        assert self.port is not None
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=dict(headers or {}))
            response = connection.getresponse()
            return Reply(response.status, response.read(), response.getheader("content-type", ""))
        finally:
            connection.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
