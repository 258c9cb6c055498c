"""The model worker with no user code: the framework defaults serve a joblib or XGBoost model,
encode and decode every content type, and refuse what they must."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from sabio.serving.worker.service import Service
from support.worker import SETOSA, VIRGINICA, Worker, npy


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
