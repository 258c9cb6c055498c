"""Building real `model.tar.gz` archives for tests: a scikit-learn model trained on iris."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

INFERENCE_PY = """\
import json, os
import joblib
import numpy as np

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def input_fn(body, content_type):
    return np.asarray(json.loads(body), dtype=float)

def predict_fn(data, model):
    return model.predict(data)

def output_fn(prediction, accept):
    return json.dumps({"predictions": prediction.tolist()}), "application/json"
"""


def iris_model() -> LogisticRegression:
    iris = load_iris()
    return LogisticRegression(max_iter=500).fit(iris.data, iris.target)


def model_archive(path: Path, files: dict[str, bytes | str], *, with_model: bool = True) -> Path:
    """A model.tar.gz holding a joblib-saved iris model plus the given extra files."""
    contents: dict[str, bytes] = {}
    if with_model:
        buffer = io.BytesIO()
        joblib.dump(iris_model(), buffer)
        contents["model.joblib"] = buffer.getvalue()
    for name, data in files.items():
        contents[name] = data.encode() if isinstance(data, str) else data
    with tarfile.open(path, "w:gz") as tar:
        for name, data in contents.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path
