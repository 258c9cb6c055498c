"""A model worker subprocess as the platform runs it (`python -m sabio.serving.worker`), the
handler scripts the worker tests load into it, and the small archive/encoding helpers they use."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np

START_TIMEOUT = 90.0
SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.7, 3.0, 5.2, 2.3]

PLAIN_HANDLERS = """\
import io
import json
import os

import joblib
import numpy as np


class UnsupportedType(Exception):
    status_code = 415


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def input_fn(input_data, content_type):
    if content_type == "application/json":
        assert isinstance(input_data, str)
        return np.asarray(json.loads(input_data), dtype=float)
    if content_type == "text/csv":
        assert isinstance(input_data, str)
        return np.loadtxt(input_data.splitlines(), delimiter=",", ndmin=2)
    if content_type == "application/x-npy":
        assert isinstance(input_data, bytes)
        return np.load(io.BytesIO(input_data), allow_pickle=False)
    raise UnsupportedType(f"cannot read {content_type}")


def predict_fn(data, model):
    if (data < 0).any():
        raise ValueError("negative measurements")
    return model.predict(data)


def output_fn(prediction, accept):
    if accept == "text/csv":
        return "\\n".join(str(label) for label in prediction.tolist()), "text/csv"
    return json.dumps({"predictions": prediction.tolist(), "accept": accept})
"""

CONTEXT_HANDLERS = """\
import json
import os

import joblib
import numpy as np

STATE = {}


def pre_model_fn(model_dir, context):
    STATE["pre_model_dir"] = context.system_properties["model_dir"] == model_dir


def model_fn(model_dir, context):
    return joblib.load(os.path.join(context.model_dir, "model.joblib"))


def model_warmup_fn(model_dir, model):
    STATE["warm"] = model.predict(np.zeros((1, 4))).tolist()


def input_fn(input_data, content_type, context):
    return np.asarray(json.loads(input_data), dtype=float)


def predict_fn(data, model, context):
    return model.predict(data)


def output_fn(prediction, accept, context):
    body = {
        "predictions": prediction.tolist(),
        "tag": context.request_headers.get("x-test-tag"),
        "model_dir": context.model_dir,
        "gpu_id": context.system_properties["gpu_id"],
        **STATE,
    }
    return json.dumps(body), "application/vnd.iris+json", {"X-Model-Tag": "iris"}
"""

TRANSFORM_HANDLERS = """\
import json
import os

import joblib
import numpy as np
from labels import NAMES


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def transform_fn(model, input_data, content_type, accept):
    data = np.asarray(json.loads(input_data), dtype=float)
    labels = [NAMES[label] for label in model.predict(data).tolist()]
    return json.dumps({"labels": labels, "content_type": content_type}), accept
"""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        assert self.headers["content-type"].startswith("application/"), self.headers
        return json.loads(self.body)


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix domain socket, as the platform's proxy will connect."""

    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=10)
        self.socket_path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(self.socket_path)
        self.sock = sock


class Worker:
    """One worker subprocess; its TCP port (``--port 0``) is read from its startup log line."""

    def __init__(
        self, workdir: Path, args: list[str], env: Mapping[str, str] | None = None
    ) -> None:
        self.workdir = workdir
        self.log = workdir / "worker.log"
        self.uds: Path | None = None
        self.port: int | None = None
        self.ready = False
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SAGEMAKER_")}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sabio.serving.worker", *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**clean, **(env or {})},
                cwd=workdir,
            )

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def connection(self) -> http.client.HTTPConnection:
        if self.uds is not None:
            return UnixHTTPConnection(self.uds)
        assert self.port is not None
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> Worker:
        if self.ready:
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"worker exited with {self.process.returncode}:\n{self.logs()}"
                )
            if self.uds is None and self.port is None:
                found = re.search(r"Serving .* on http://127\.0\.0\.1:(\d+)", self.logs())
                self.port = int(found.group(1)) if found else None
            if self.uds is not None or self.port is not None:
                try:
                    if self.request("GET", "/ping").status == 200:
                        self.ready = True
                        return self
                except OSError:
                    pass
            time.sleep(0.05)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.logs()}")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        connection = self.connection()
        try:
            connection.request(method, path, body=body, headers=dict(headers or {}))
            response = connection.getresponse()
            data = response.read()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        finally:
            connection.close()

    def invoke(
        self, body: bytes | str, content_type: str = "application/json", accept: str | None = None
    ) -> Reply:
        headers = {"Content-Type": content_type}
        if accept is not None:
            headers["Accept"] = accept
        return self.request("POST", "/invocations", body, headers)

    def stop(self, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def archive(path: Path, files: Mapping[str, bytes | str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            raw = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def dumped(model: object) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


def npy(array: np.ndarray[Any, Any], allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()
