"""The model worker as the platform runs it: a real `python -m sabio.serving.worker` process
answering real HTTP over loopback TCP or a Unix socket.

Workers take seconds to start (importing scikit-learn dominates), so all the long-lived ones
are launched together by one module fixture and each test waits only for the one it uses.
"""

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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from sabio.serving.worker.handlers import resolve_code_dir
from sabio.serving.worker.service import Service

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


@pytest.fixture(scope="module")
def iris() -> LogisticRegression:
    data = load_iris()
    return LogisticRegression(max_iter=500).fit(data.data, data.target)


@pytest.fixture(scope="module")
def xgb_classifier() -> Any:
    xgboost = pytest.importorskip("xgboost")
    data = load_iris()
    return xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(data.data, data.target)


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory, iris: LogisticRegression, xgb_classifier: Any
) -> Iterator[dict[str, Worker]]:
    """Every long-lived worker of this module, started at once so their startups overlap.

    ``{workdir}`` in an argument stands for the worker's own scratch directory.
    """
    model = dumped(iris)
    workers: dict[str, Worker] = {}

    def launch(name: str, files: Mapping[str, bytes | str], *args: str, **env: str) -> Worker:
        workdir = tmp_path_factory.mktemp(name)
        data = archive(workdir / "model.tar.gz", files)
        argv = ["--model-data", str(data), *(arg.format(workdir=workdir) for arg in args)]
        workers[name] = Worker(workdir, argv, env)
        return workers[name]

    try:
        launch("plain", {"model.joblib": model, "code/inference.py": PLAIN_HANDLERS}, "--port=0")
        launch(
            "context", {"model.joblib": model, "code/inference.py": CONTEXT_HANDLERS}, "--port=0"
        )
        launch(
            "transform",
            {
                "model.joblib": model,
                "code/inference.py": "raise RuntimeError('the default program must not load')",
                "src/serve.py": TRANSFORM_HANDLERS,
                "src/labels.py": "NAMES = ['setosa', 'versicolor', 'virginica']\n",
            },
            "--port=0",
            "--model-dir={workdir}/model",
            SAGEMAKER_PROGRAM="serve.py",
            SAGEMAKER_SUBMIT_DIRECTORY="/opt/ml/model/src",
        )
        launch(
            "defaults",
            {"model.joblib": model},
            "--port=0",
            SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="text/csv",
            SAGEMAKER_MAX_PAYLOAD_IN_MB="1",
        )
        launch("xgboost", {"iris-xgb.joblib": dumped(xgb_classifier)}, "--port=0")
        uds = launch("uds", {"model.joblib": model}, "--uds={workdir}/w.sock")
        uds.uds = uds.workdir / "w.sock"
        yield workers
    finally:
        for worker in workers.values():
            worker.stop()


@pytest.fixture
def plain(fleet: dict[str, Worker]) -> Worker:
    return fleet["plain"].wait_ready()


@pytest.fixture
def context_worker(fleet: dict[str, Worker]) -> Worker:
    return fleet["context"].wait_ready()


@pytest.fixture
def transform(fleet: dict[str, Worker]) -> Worker:
    return fleet["transform"].wait_ready()


@pytest.fixture
def defaults(fleet: dict[str, Worker]) -> Worker:
    return fleet["defaults"].wait_ready()


@pytest.fixture
def labels(iris: LogisticRegression) -> list[int]:
    predicted = iris.predict(np.array([SETOSA, VIRGINICA])).tolist()
    assert predicted == [0, 2]
    return list(predicted)


def test_ping_and_execution_parameters(plain: Worker) -> None:
    ping = plain.request("GET", "/ping")
    assert (ping.status, ping.body) == (200, b"")
    parameters = plain.request("GET", "/execution-parameters")
    assert parameters.status == 200
    assert parameters.json() == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }


def test_unknown_path_and_wrong_method(plain: Worker) -> None:
    assert plain.request("GET", "/models").status == 404
    wrong = plain.request("GET", "/invocations")
    assert (wrong.status, wrong.headers["allow"]) == (405, "POST")
    assert plain.request("POST", "/ping").status == 405


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (json.dumps([SETOSA, VIRGINICA]), "application/json"),
        (json.dumps([SETOSA, VIRGINICA]), "application/json; charset=utf-8"),
        (json.dumps([SETOSA, VIRGINICA]).encode("utf-16"), "Application/JSON; charset=UTF-16"),
        ("5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n", "text/csv"),
        (npy(np.array([SETOSA, VIRGINICA])), "application/x-npy"),
    ],
    ids=["json", "json-charset", "json-utf16", "csv", "npy"],
)
def test_user_handlers_decode_every_content_type(
    plain: Worker, labels: list[int], body: bytes | str, content_type: str
) -> None:
    reply = plain.invoke(body, content_type)
    assert reply.status == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"predictions": labels, "accept": "application/json"}


@pytest.mark.parametrize(
    ("accept", "content_type", "expected"),
    [
        ("text/csv;q=0.5, application/json", "application/json", None),
        ("application/json;q=0.2, text/csv", "text/csv", "0"),
        ("*/*", "application/json", None),
        ("application/*", "application/json", None),
    ],
)
def test_accept_lists_pick_the_preferred_type(
    plain: Worker, accept: str, content_type: str, expected: str | None
) -> None:
    reply = plain.invoke(json.dumps([SETOSA]), accept=accept)
    assert reply.status == 200, reply.text
    assert reply.headers["content-type"] == content_type
    if expected is None:
        assert reply.json() == {"predictions": [0], "accept": "application/json"}
    else:
        assert reply.text == expected


def test_user_errors_map_to_status_codes(plain: Worker) -> None:
    unsupported = plain.invoke("hello", "text/plain")
    assert (unsupported.status, unsupported.text) == (
        415,
        "UnsupportedType: cannot read text/plain",
    )

    bad_json = plain.invoke("[[5.1, 3.5,", "application/json")
    assert bad_json.status == 400
    assert "JSONDecodeError" in bad_json.text

    failing = plain.invoke(json.dumps([[-1.0, 3.5, 1.4, 0.2]]))
    assert (failing.status, failing.text) == (500, "ValueError: negative measurements")
    assert failing.headers["content-type"].startswith("text/plain")
    assert "Traceback" in plain.logs()


def test_handlers_taking_context(context_worker: Worker) -> None:
    reply = context_worker.request(
        "POST",
        "/invocations",
        json.dumps([SETOSA]),
        {"Content-Type": "application/json", "X-Test-Tag": "blue"},
    )
    assert reply.status == 200, reply.text
    assert reply.headers["content-type"] == "application/vnd.iris+json"
    assert reply.headers["x-model-tag"] == "iris"
    body = reply.json()
    assert body["predictions"] == [0]
    assert body["tag"] == "blue"
    assert body["gpu_id"] is None
    assert body["pre_model_dir"] is True
    assert isinstance(body["warm"], list)
    assert (Path(body["model_dir"]) / "model.joblib").is_file()


def test_transform_fn_from_submit_directory_and_program(transform: Worker) -> None:
    reply = transform.invoke(json.dumps([SETOSA, VIRGINICA]), accept="application/json")
    assert reply.status == 200, reply.text
    assert reply.json() == {"labels": ["setosa", "virginica"], "content_type": "application/json"}
    assert (transform.workdir / "model" / "src" / "serve.py").is_file()

    custom = transform.invoke(json.dumps([SETOSA]), accept="application/vnd.labels+json")
    assert custom.status == 200, custom.text
    assert custom.headers["content-type"] == "application/vnd.labels+json"


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "expected_type", "expected"),
    [
        (json.dumps([SETOSA, VIRGINICA]), "application/json", None, "text/csv", b"0\n2\n"),
        (json.dumps([SETOSA, VIRGINICA]), "application/json", "*/*", "text/csv", b"0\n2\n"),
        (
            json.dumps([SETOSA, VIRGINICA]),
            "application/json",
            "application/*",
            "application/json",
            b"[0, 2]",
        ),
        (
            "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3",
            "text/csv",
            "application/json",
            "application/json",
            b"[0, 2]",
        ),
        ("5.1,3.5,1.4,0.2", "text/csv; charset=utf-8", "text/csv", "text/csv", b"0\n"),
    ],
    ids=["default-accept-env", "any", "application-wildcard", "csv-to-json", "csv-row"],
)
def test_framework_defaults_serve_a_joblib_model(
    defaults: Worker,
    body: str,
    content_type: str,
    accept: str | None,
    expected_type: str,
    expected: bytes,
) -> None:
    reply = defaults.invoke(body, content_type, accept)
    assert reply.status == 200, reply.text
    assert (reply.headers["content-type"], reply.body) == (expected_type, expected)


def test_framework_defaults_npy_round_trip(defaults: Worker, labels: list[int]) -> None:
    reply = defaults.invoke(
        npy(np.array([SETOSA, VIRGINICA])), "application/x-npy", "application/x-npy"
    )
    assert reply.status == 200, reply.text
    assert reply.headers["content-type"] == "application/x-npy"
    assert np.load(io.BytesIO(reply.body), allow_pickle=False).tolist() == labels


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "message"),
    [
        ("[[1, 2", "application/json", None, 400, "Could not decode the application/json body"),
        ("[[1, 2], [3]]", "application/json", None, 400, "Could not decode the application/json"),
        ("a,b\n", "text/csv", None, 400, "Could not decode the text/csv body"),
        (b"\x93NUMPY garbage", "application/x-npy", None, 400, "application/x-npy"),
        ("hello", "text/plain", None, 415, "supported types are application/json, text/csv"),
        ("[[1, 2, 3, 4]]", "application/json", "text/html", 415, "Unsupported Accept 'text/html'"),
        ("[[1, 2, 3, 4]]", "application/json; charset=klingon", None, 415, "charset"),
    ],
    ids=["bad-json", "ragged-json", "bad-csv", "bad-npy", "content-type", "accept", "charset"],
)
def test_framework_defaults_reject_bad_requests(
    defaults: Worker,
    body: bytes | str,
    content_type: str,
    accept: str | None,
    status: int,
    message: str,
) -> None:
    reply = defaults.invoke(body, content_type, accept)
    assert reply.status == status, reply.text
    assert message in reply.text


class _CreatesDirectory:
    """Unpickling this calls os.mkdir: proof that a body was (or was not) unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.path),)


def test_pickled_npy_body_is_refused_not_unpickled(defaults: Worker, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    payload = npy(np.array([_CreatesDirectory(marker)], dtype=object), allow_pickle=True)
    reply = defaults.invoke(payload, "application/x-npy")
    assert reply.status == 400
    assert "pickle" in reply.text.lower()
    assert not marker.exists()


def test_payload_over_the_cap_is_rejected(defaults: Worker) -> None:
    reply = defaults.invoke(b"1," * (800 * 1024), "text/csv")
    assert reply.status == 413
    assert "1 MB" in reply.text


def test_xgboost_classifier_saved_with_joblib(
    fleet: dict[str, Worker], xgb_classifier: Any
) -> None:
    worker = fleet["xgboost"].wait_ready()
    rows = [SETOSA, VIRGINICA, [5.9, 3.0, 4.2, 1.5]]
    reply = worker.invoke(json.dumps(rows), accept="application/json")
    assert reply.status == 200, reply.text
    assert reply.json() == xgb_classifier.predict(np.array(rows)).tolist()


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


@pytest.mark.parametrize(
    ("saved_as", "filename"),
    [
        ("booster.ubj", "xgboost-model"),
        ("booster.json", "xgboost-model"),
        ("pickle", "xgboost-model"),
        ("booster.json", "booster.json"),
        ("booster.ubj", "booster.ubj"),
    ],
)
def test_xgboost_boosters_load_by_default(
    tmp_path: Path, xgb_classifier: Any, saved_as: str, filename: str
) -> None:
    booster = xgb_classifier.get_booster()
    saved = tmp_path / "saved" / saved_as
    saved.parent.mkdir()
    if saved_as == "pickle":
        joblib.dump(booster, saved)
    else:
        booster.save_model(str(saved))
    saved.rename(tmp_path / filename)
    saved.parent.rmdir()
    service = Service.load(tmp_path, environ={})
    rows = [SETOSA, VIRGINICA]
    body, content_type, _ = service.invoke(json.dumps(rows).encode(), None, None, [])
    assert content_type == "application/json"
    expected = xgb_classifier.predict_proba(np.array(rows))
    assert np.allclose(np.array(json.loads(body)), expected, atol=1e-6)


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
