"""Serving a Linear Learner model the way SageMaker's ``linear-learner`` image does.

Requests are ``text/csv`` records (no label), ``application/json``
(``{"instances": [{"features": [...]}]}`` or lists of rows) or ``application/jsonlines``.
Responses are ``application/json`` (the default) or ``application/jsonlines``:

- binary classifier: ``{"predictions": [{"score": 0.87, "predicted_label": 1}]}``, the score
  being P(label 1) and the label comparing it with the threshold chosen in training;
- multiclass classifier: ``{"score": [p0, p1, ...], "predicted_label": 2}`` per record;
- regressor: ``{"score": 12.3}`` per record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import payloads
from .payloads import (
    CSV,
    JSON,
    JSONLINES,
    RECORDIO_PROTOBUF,
    FloatArray,
    InferenceError,
    NotAcceptable,
    UnsupportedMediaType,
)

MODEL_FILE = "model.joblib"
CONFIG_FILE = "linear-learner.json"
BINARY = "binary_classifier"
MULTICLASS = "multiclass_classifier"


@dataclass(frozen=True)
class LinearModel:
    pipeline: Any
    predictor_type: str
    feature_dim: int
    threshold: float
    score: str  # "probability", "margin" or "value"


def model_fn(model_dir: str) -> LinearModel:
    import joblib

    root = Path(model_dir)
    config = json.loads((root / CONFIG_FILE).read_text(encoding="utf-8"))
    return LinearModel(
        pipeline=joblib.load(root / MODEL_FILE),
        predictor_type=str(config["predictor_type"]),
        feature_dim=int(config["feature_dim"]),
        threshold=float(config.get("threshold") or 0.0),
        score=str(config.get("score", "value")),
    )


def input_fn(input_data: str | bytes, content_type: str) -> FloatArray:
    kind = payloads.media_type(content_type)
    if kind == RECORDIO_PROTOBUF:
        raise UnsupportedMediaType(
            "application/x-recordio-protobuf is not supported here: send text/csv, "
            "application/json or application/jsonlines"
        )
    body = payloads.text(input_data)
    if kind == CSV:
        return payloads.csv_rows(body, allow_missing=False)
    if kind == JSON:
        return payloads.json_rows(body)
    if kind == JSONLINES:
        return payloads.jsonlines_rows(body)
    raise UnsupportedMediaType(
        f"Content type {kind} is not supported: use text/csv, application/json or "
        "application/jsonlines"
    )


def predict_fn(data: FloatArray, model: LinearModel) -> list[dict[str, Any]]:
    if data.shape[1] != model.feature_dim:
        raise InferenceError(
            f"The model takes {model.feature_dim} features per record; the request has "
            f"{data.shape[1]}"
        )
    if not np.isfinite(data).all():
        raise InferenceError("The request has missing or infinite feature values")
    pipeline = model.pipeline
    if model.predictor_type == MULTICLASS:
        probabilities = np.asarray(pipeline.predict_proba(data), dtype=np.float64)
        return [
            {"score": row.tolist(), "predicted_label": int(np.argmax(row))} for row in probabilities
        ]
    if model.predictor_type == BINARY:
        if model.score == "probability":
            score = np.asarray(pipeline.predict_proba(data), dtype=np.float64)[:, 1]
        else:
            score = np.asarray(pipeline.decision_function(data), dtype=np.float64)
        return [
            {"score": float(value), "predicted_label": int(value >= model.threshold)}
            for value in score
        ]
    values = np.asarray(pipeline.predict(data), dtype=np.float64)
    return [{"score": payloads.json_number(float(value))} for value in values]


def output_fn(prediction: list[dict[str, Any]], accept: str) -> tuple[bytes, str]:
    kind = payloads.media_type(accept)
    if kind == JSON:
        return json.dumps({"predictions": prediction}).encode(), JSON
    if kind == JSONLINES:
        return "".join(json.dumps(record) + "\n" for record in prediction).encode(), JSONLINES
    raise NotAcceptable(
        f"Accept {kind} is not supported: use application/json or application/jsonlines"
    )
