"""Serving an ``xgboost-model`` the way SageMaker's XGBoost algorithm image (1.7) does.

Requests are ``text/csv`` (the default when a request names no type), ``text/libsvm``
(``text/x-libsvm``), and, beyond SageMaker, ``application/json`` and ``application/jsonlines``
instances. Responses, ``text/csv`` unless the request or ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``
asks otherwise:

- ``text/csv``: one prediction per record, comma-separated on one line as the SageMaker
  container answers an endpoint, one per line under batch transform (``SAGEMAKER_BATCH``);
  class probabilities (``multi:softprob``) are one comma-separated line per record;
- ``application/json``: the predictions as a JSON array (nested for ``multi:softprob``);
- with ``SAGEMAKER_INFERENCE_OUTPUT`` (e.g. ``predicted_label,probability``), SageMaker's
  selectable inference output: ``{"predictions": [{"predicted_label": 1, ...}]}`` in JSON, one
  such object per line in JSON Lines, or the selected values per CSV line.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import payloads
from .payloads import (
    CSV,
    JSON,
    JSONLINES,
    LIBSVM,
    RECORDIO_PROTOBUF,
    X_LIBSVM,
    FloatArray,
    InferenceError,
    NotAcceptable,
    RequestContext,
    UnsupportedMediaType,
)

MODEL_FILE = "xgboost-model"
DEFAULT_ACCEPT = CSV
_LIBSVM_TYPES = frozenset({LIBSVM, X_LIBSVM, "libsvm"})
_CSV_TYPES = frozenset({CSV, "csv"})

PREDICTED_LABEL = "predicted_label"
LABELS = "labels"
PROBABILITY = "probability"
PROBABILITIES = "probabilities"
RAW_SCORE = "raw_score"
RAW_SCORES = "raw_scores"
PREDICTED_SCORE = "predicted_score"
SELECTABLE_KEYS = (
    PREDICTED_LABEL,
    LABELS,
    PROBABILITY,
    PROBABILITIES,
    RAW_SCORE,
    RAW_SCORES,
    PREDICTED_SCORE,
)
_CLASSIFIER_KEYS = frozenset({PREDICTED_LABEL, LABELS, RAW_SCORE, RAW_SCORES})
_VALID_KEYS: dict[str, frozenset[str]] = {
    "binary:logistic": _CLASSIFIER_KEYS | {PROBABILITY, PROBABILITIES},
    "multi:softprob": _CLASSIFIER_KEYS | {PROBABILITY, PROBABILITIES},
    "binary:logitraw": _CLASSIFIER_KEYS,
    "binary:hinge": _CLASSIFIER_KEYS,
    "multi:softmax": _CLASSIFIER_KEYS,
}
"""Keys each classification objective can fill; every other objective fills predicted_score."""


@dataclass(frozen=True)
class XGBoostModel:
    booster: Any
    objective: str
    num_class: int
    num_features: int
    default_accept: str
    batch: bool
    selected_keys: tuple[str, ...]


@dataclass(frozen=True)
class SparseRows:
    """LIBSVM records; the matrix is built once the model's width is known."""

    values: FloatArray
    indices: npt.NDArray[np.int64]
    indptr: npt.NDArray[np.int64]
    width: int


@dataclass(frozen=True)
class Prediction:
    values: npt.NDArray[Any]
    model: XGBoostModel


def _selected_keys(setting: str | None) -> tuple[str, ...]:
    if not setting or not setting.strip():
        return ()
    keys = tuple(key for key in setting.replace(" ", "").lower().split(",") if key)
    unknown = [key for key in keys if key not in SELECTABLE_KEYS]
    if unknown:
        raise ValueError(
            f"SAGEMAKER_INFERENCE_OUTPUT names {', '.join(unknown)}: the keys are "
            f"{', '.join(SELECTABLE_KEYS)}"
        )
    return keys


def model_fn(model_dir: str) -> XGBoostModel:
    import xgboost

    booster = xgboost.Booster()
    # From a buffer XGBoost recognises UBJSON or JSON without a file extension to go by.
    booster.load_model(bytearray((Path(model_dir) / MODEL_FILE).read_bytes()))
    learner = json.loads(booster.save_config())["learner"]
    return XGBoostModel(
        booster=booster,
        objective=str(learner["objective"]["name"]),
        num_class=int(learner["learner_model_param"].get("num_class", "0")),
        num_features=booster.num_features(),
        default_accept=payloads.media_type(
            os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or DEFAULT_ACCEPT
        ),
        batch=bool(os.environ.get("SAGEMAKER_BATCH")),
        selected_keys=_selected_keys(os.environ.get("SAGEMAKER_INFERENCE_OUTPUT")),
    )


def input_fn(
    input_data: str | bytes, content_type: str, context: RequestContext | None
) -> FloatArray | SparseRows:
    # A request without a Content-Type is CSV for SageMaker's XGBoost (the worker says JSON).
    given = payloads.header(context, "content-type") is not None or context is None
    kind = payloads.media_type(content_type) if given else CSV
    if kind == RECORDIO_PROTOBUF:
        raise UnsupportedMediaType(
            "application/x-recordio-protobuf is not supported here: send text/csv, "
            "text/libsvm or application/json"
        )
    body = payloads.text(input_data)
    if kind in _CSV_TYPES:
        return payloads.csv_rows(body, allow_missing=True)
    if kind in _LIBSVM_TYPES:
        return SparseRows(*payloads.libsvm_rows(body))
    if kind == JSON:
        return payloads.json_rows(body, allow_missing=True)
    if kind == JSONLINES:
        return payloads.jsonlines_rows(body, allow_missing=True)
    raise UnsupportedMediaType(
        f"Content type {kind} is not supported: use text/csv, text/libsvm, application/json "
        "or application/jsonlines"
    )


def predict_fn(data: FloatArray | SparseRows, model: XGBoostModel) -> Prediction:
    width = model.num_features
    matrix: Any
    if isinstance(data, SparseRows):
        if data.width > width:
            raise InferenceError(
                f"A record has feature index {data.width - 1}, but the model has {width} "
                f"features (indices 0 to {width - 1})"
            )
        sparse: Any = importlib.import_module("scipy.sparse")
        matrix = sparse.csr_matrix(
            (data.values, data.indices, data.indptr), shape=(len(data.indptr) - 1, width)
        )
    else:
        if data.shape[1] != width:
            raise InferenceError(
                f"The model takes {width} features per record; the request has {data.shape[1]}"
            )
        matrix = data
    values = model.booster.inplace_predict(matrix, missing=np.nan)
    return Prediction(np.asarray(values), model)


def output_fn(
    prediction: Prediction, accept: str, context: RequestContext | None
) -> tuple[bytes, str]:
    model = prediction.model
    requested = payloads.header(context, "accept")
    chosen = payloads.media_type(accept)
    if context is not None and (requested is None or requested.strip() in ("*/*", "*")):
        chosen = model.default_accept
    if model.selected_keys:
        return _selected_output(prediction, chosen), chosen
    if chosen in _CSV_TYPES:
        return _csv(prediction.values, model.batch).encode(), CSV
    if chosen == JSON:
        return json.dumps(prediction.values.tolist()).encode(), JSON
    raise NotAcceptable(f"Accept {chosen} is not supported: use text/csv or application/json")


def _csv(values: npt.NDArray[Any], batch: bool) -> str:
    rows = values.tolist()
    if values.ndim == 1:
        return "\n".join(map(str, rows)) + "\n" if batch else ",".join(map(str, rows))
    body = "\n".join(",".join(map(str, row)) for row in rows)
    return body + "\n" if batch else body


# Selectable inference output (SAGEMAKER_INFERENCE_OUTPUT).


def _predicted_label(objective: str, value: npt.NDArray[Any]) -> Any:
    if objective == "multi:softprob":
        return int(np.argmax(value))
    if objective == "binary:logistic":
        return int(value.item() > 0.5)
    if objective == "binary:logitraw":
        return int(value.item() > 0)
    return value.item()


def _record(
    objective: str, num_class: int, value: npt.NDArray[Any], keys: Sequence[str]
) -> dict[str, Any]:
    valid = _VALID_KEYS.get(objective, frozenset({PREDICTED_SCORE}))
    multi = objective == "multi:softprob"
    record: dict[str, Any] = {}
    for key in keys:
        if key not in valid:
            record[key] = None
        elif key == PREDICTED_LABEL:
            record[key] = _predicted_label(objective, value)
        elif key == LABELS:
            record[key] = list(range(num_class)) if objective.startswith("multi:") else [0, 1]
        elif key in (PROBABILITY, RAW_SCORE):
            record[key] = float(np.max(value)) if multi else value.item()
        elif key in (PROBABILITIES, RAW_SCORES):
            record[key] = value.tolist() if multi else [1.0 - value.item(), value.item()]
        else:
            record[key] = value.item()
    return record


def _selected_output(prediction: Prediction, accept: str) -> bytes:
    model = prediction.model
    keys = model.selected_keys
    records = [_record(model.objective, model.num_class, v, keys) for v in prediction.values]
    if accept == JSON:
        return json.dumps({"predictions": records}).encode()
    if accept == JSONLINES:
        return "".join(json.dumps(record) + "\n" for record in records).encode()
    if accept in _CSV_TYPES:
        lines = [
            ",".join(
                f'"{record[key]}"' if isinstance(record[key], list) else str(record[key])
                for key in keys
            )
            for record in records
        ]
        body = "\n".join(lines)
        return (body + "\n" if model.batch else body).encode()
    raise NotAcceptable(
        f"Accept {accept} is not supported: use text/csv, application/json or application/jsonlines"
    )
