"""The servers `bench_serving.py` compares: each peer (MLServer, BentoML, MLflow) installed in
its own uv venv under a cache directory, the model files each one serves, how to launch it and
what request body it takes; and the in-process Starlette floor.

Every server gets the same models: a scikit-learn LogisticRegression and a RandomForest
(50 trees, depth 8) fitted on `make_classification(n_samples=20000, n_features=20,
random_state=0)`, trained inside the venv that serves it so no pickle crosses library versions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

UV = str(Path(sys.executable).parent / "uv")

# Pins from measured installs: MLServer 1.7.1 crashes at start with uvloop 0.22; without
# uvloop, MLflow with two workers waits ~44 ms on Nagle for small responses.
PINS: dict[str, list[str]] = {
    "mlserver": ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22", "scikit-learn"],
    "bentoml": ["bentoml==1.4.39", "scikit-learn"],
    "mlflow": ["mlflow==3.17.2", "scikit-learn", "uvloop"],
}

TRAIN = """\
import json, sys
from pathlib import Path

import joblib
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

out, flavour = Path(sys.argv[1]), sys.argv[2]
x, y = make_classification(n_samples=20000, n_features=20, random_state=0)
models = {
    "logreg": LogisticRegression(max_iter=1000).fit(x, y),
    "forest": RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(x, y),
}
for name, model in models.items():
    target = out / name
    target.mkdir(parents=True, exist_ok=True)
    if flavour == "mlflow":
        import mlflow.sklearn

        saved = target / "mlflow"
        if not saved.exists():
            mlflow.sklearn.save_model(
                model, str(saved), serialization_format="cloudpickle"
            )
    joblib.dump(model, target / "model.joblib")
    if flavour == "mlserver":
        (target / "model-settings.json").write_text(json.dumps({
            "name": name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib"},
        }))
print("trained")
"""

FLOOR = """\
import json, os

import joblib
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

model = joblib.load(os.environ["FLOOR_MODEL"])


async def predict(request: Request) -> Response:
    rows = np.asarray(json.loads(await request.body()), dtype=float)
    body = json.dumps(model.predict(rows).tolist())
    return Response(body, media_type="application/json")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
"""

BENTO = """\
import os

import bentoml
import joblib
import numpy as np


@bentoml.service(workers=int(os.environ.get("BENTO_WORKERS", "1")))
class Classifier:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["BENTO_MODEL"])

    @bentoml.api
    async def predict(self, rows: list[list[float]]) -> list[int]:
        return self.model.predict(np.asarray(rows, dtype=float)).tolist()
"""


@dataclass(frozen=True)
class Launch:
    """How to start one server for one model and how to call it."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    path: str
    body: Callable[[list[list[float]]], bytes]


def venv_python(cache: Path, peer: str) -> Path:
    return cache / peer / "bin" / "python"


def install(cache: Path, peer: str, log: Callable[[str], None]) -> Path:
    """The peer's venv (built once; a marker file records the pins it was built with)."""
    venv = cache / peer
    marker = venv / "sabio-bench-pins.json"
    wanted = json.dumps(PINS[peer])
    if marker.exists() and marker.read_text() == wanted:
        return venv_python(cache, peer)
    log(f"installing {peer} into {venv}")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    subprocess.run(
        [UV, "pip", "install", "-q", "--python", str(venv_python(cache, peer)), *PINS[peer]],
        check=True,
    )
    marker.write_text(wanted)
    return venv_python(cache, peer)


def train(python: Path, out: Path, flavour: str) -> None:
    script = out / "train.py"
    out.mkdir(parents=True, exist_ok=True)
    script.write_text(TRAIN)
    subprocess.run(
        [str(python), str(script), str(out), flavour],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}"},
    )


def json_rows(rows: list[list[float]]) -> bytes:
    return json.dumps(rows).encode()


def v2_rows(rows: list[list[float]]) -> bytes:
    flat = [value for row in rows for value in row]
    tensor = {"name": "predict", "shape": [len(rows), len(rows[0])], "datatype": "FP64"}
    return json.dumps({"inputs": [{**tensor, "data": flat}]}).encode()


def mlflow_rows(rows: list[list[float]]) -> bytes:
    return json.dumps({"inputs": rows}).encode()


def bento_rows(rows: list[list[float]]) -> bytes:
    return json.dumps({"rows": rows}).encode()


def floor(work: Path, model: Path, port: int, workers: int) -> Launch:
    (work / "floor_app.py").write_text(FLOOR)
    argv = [sys.executable, "-m", "uvicorn", "floor_app:app", "--port", str(port)]
    argv += ["--workers", str(workers), "--loop", "uvloop", "--http", "httptools"]
    argv += ["--log-level", "warning", "--no-access-log"]
    return Launch(argv, {"FLOOR_MODEL": str(model)}, work, "/predict", json_rows)


def mlserver(
    python: Path, models: Path, name: str, port: int, workers: int, parallel: int
) -> Launch:
    """`parallel` is MLServer's `parallel_workers` (0 runs inference in the HTTP process)."""
    root = models / f"run-{name}-{parallel}"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(models / name, root / name)
    settings = {
        "http_port": port,
        "grpc_port": 0,
        "metrics_port": 0,
        "metrics_endpoint": None,
        "parallel_workers": parallel if workers == 1 else workers,
        "debug": False,
    }
    (root / "settings.json").write_text(json.dumps(settings))
    argv = [str(python.parent / "mlserver"), "start", str(root)]
    return Launch(argv, {}, root, f"/v2/models/{name}/infer", v2_rows)


def mlflow(python: Path, models: Path, name: str, port: int, workers: int) -> Launch:
    argv = [str(python.parent / "mlflow"), "models", "serve", "-m", str(models / name / "mlflow")]
    argv += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", str(workers)]
    env = {"PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}"}
    return Launch(argv, env, models, "/invocations", mlflow_rows)


def bentoml(python: Path, models: Path, name: str, port: int, workers: int) -> Launch:
    (models / "bento_service.py").write_text(BENTO)
    argv = [str(python.parent / "bentoml"), "serve", "bento_service:Classifier"]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    env = {
        "BENTO_MODEL": str(models / name / "model.joblib"),
        "BENTO_WORKERS": str(workers),
        "BENTOML_DO_NOT_TRACK": "True",
        "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}",
    }
    return Launch(argv, env, models, "/predict", bento_rows)
