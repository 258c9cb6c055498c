"""Framework defaults for models shipped without ``model_fn``/``predict_fn``.

They cover what the SageMaker scikit-learn and XGBoost containers serve out of the box:
a joblib/pickle-saved estimator, or an XGBoost model in its native format.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sabio.serving.worker.handlers import ModelLoadError, one_line

PICKLE_NAMES = ("model.joblib", "model.pkl", "model.pickle")
PICKLE_SUFFIXES = frozenset({".joblib", ".pkl", ".pickle"})
XGBOOST_NAME = "xgboost-model"
XGBOOST_SUFFIXES = frozenset({".json", ".ubj"})


class ModelNotFound(ModelLoadError):
    """Nothing in the model directory looks like a model the defaults can load."""


LOOKED_FOR = (
    "model.joblib, model.pkl, model.pickle, a single *.joblib/*.pkl/*.pickle file, "
    "xgboost-model, or a lone *.json/*.ubj XGBoost model"
)


def find_model_file(model_dir: Path) -> tuple[Path, str]:
    """The model artifact in ``model_dir`` and its kind, ``"joblib"`` or ``"xgboost"``."""
    if not model_dir.is_dir():
        raise ModelNotFound(f"Model directory {model_dir} does not exist")
    files = sorted(p for p in model_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    for name in PICKLE_NAMES:
        if (model_dir / name).is_file():
            return model_dir / name, "joblib"
    pickles = [p for p in files if p.suffix in PICKLE_SUFFIXES]
    if len(pickles) > 1:
        names = ", ".join(p.name for p in pickles)
        raise ModelLoadError(
            f"Several candidate model files in {model_dir} ({names}): rename the model "
            "model.joblib or define model_fn"
        )
    if pickles:
        return pickles[0], "joblib"
    if (model_dir / XGBOOST_NAME).is_file():
        return model_dir / XGBOOST_NAME, "xgboost"
    if len(files) == 1 and files[0].suffix in XGBOOST_SUFFIXES:
        return files[0], "xgboost"
    raise ModelNotFound(f"No model found in {model_dir}: looked for {LOOKED_FOR}")


def _joblib_load(path: Path) -> Any:
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:
        raise ModelLoadError(f"Loading {path} failed: {one_line(exc)}") from exc


def _xgboost_load(path: Path) -> Any:
    try:
        import xgboost
    except ImportError as exc:
        raise ModelLoadError(
            f"{path} looks like an XGBoost model but xgboost is not installed"
        ) from exc
    booster = xgboost.Booster()
    try:
        # From a buffer xgboost sniffs JSON vs UBJSON instead of guessing from the file name.
        booster.load_model(bytearray(path.read_bytes()))
    except xgboost.core.XGBoostError as exc:
        if path.name == XGBOOST_NAME:
            # Older SageMaker XGBoost containers pickled the Booster under this name.
            return _joblib_load(path)
        raise ModelLoadError(f"Loading {path} as an XGBoost model failed: {one_line(exc)}") from exc
    return booster


def default_model_fn(model_dir: Path) -> Any:
    """Load the model the way the SageMaker framework containers do by default."""
    path, kind = find_model_file(model_dir)
    return _joblib_load(path) if kind == "joblib" else _xgboost_load(path)


def default_predict(model: Any) -> Callable[[Any], Any]:
    """The prediction callable for ``model``: its bound ``predict``, via DMatrix for a Booster."""
    xgboost = sys.modules.get("xgboost")
    if xgboost is not None and isinstance(model, xgboost.Booster):
        booster_predict = model.predict
        dmatrix = xgboost.DMatrix

        def predict(data: Any) -> Any:
            return booster_predict(dmatrix(data))

        return predict
    predict_method = getattr(model, "predict", None)
    if not callable(predict_method):
        raise ModelLoadError(
            f"The model ({type(model).__name__}) has no predict method: define predict_fn "
            "or transform_fn"
        )
    return predict_method  # type: ignore[no-any-return]
