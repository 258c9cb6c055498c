"""The built-in XGBoost algorithm end to end: real training processes on sklearn's data sets,
their logs scraped with the algorithm's own metric definitions, and the models served by the
Sabio model worker (in this process, and once as a real worker over HTTP)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from algorithms.algorithm_harness import (
    Channel,
    Result,
    Worker,
    csv_text,
    features_csv,
    invoke,
    libsvm_text,
    load_service,
    metric_values,
    train_all,
    write_tree,
)
from sabio.algorithms import xgboost as algorithm
from sabio.serving.worker.service import Service

Data = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


def split(data: Data, first: int) -> tuple[Data, Data]:
    features, labels = data
    order = np.random.default_rng(7).permutation(labels.size)
    features, labels = features[order], labels[order]
    return (features[:first], labels[:first]), (features[first:], labels[first:])


@pytest.fixture(scope="module")
def cancer() -> tuple[Data, Data]:
    return split(load_breast_cancer(return_X_y=True), 450)


@pytest.fixture(scope="module")
def iris() -> tuple[Data, Data]:
    return split(load_iris(return_X_y=True), 120)


@pytest.fixture(scope="module")
def diabetes() -> tuple[Data, Data]:
    return split(load_diabetes(return_X_y=True), 350)


@pytest.fixture(scope="module")
def jobs(
    tmp_path_factory: pytest.TempPathFactory,
    cancer: tuple[Data, Data],
    iris: tuple[Data, Data],
    diabetes: tuple[Data, Data],
) -> dict[str, Result]:
    """Three training jobs, run at once."""
    base = tmp_path_factory.mktemp("xgboost")
    (train_x, train_y), (valid_x, valid_y) = cancer
    binary = write_tree(
        base / "binary",
        {
            "num_round": "40",
            "objective": "binary:logistic",
            "eval_metric": "logloss,auc,accuracy",
            "early_stopping_rounds": "5",
            "max_depth": "3",
            "eta": "0.3",
        },
        {
            # Split over files and folders, next to files a channel never reads.
            "train": Channel(
                {
                    "part-1.csv": csv_text(train_y[:200], train_x[:200]),
                    "more/part-2.csv": csv_text(train_y[200:], train_x[200:]),
                    ".hidden.csv": "not,a,number\n",
                    "_SUCCESS": "",
                },
                "text/csv",
            ),
            "validation": Channel({"valid.csv": csv_text(valid_y, valid_x)}, "text/csv"),
        },
    )
    (train_x, train_y), (valid_x, valid_y) = iris
    multi = write_tree(
        base / "multi",
        {"num_round": "10", "objective": "multi:softprob", "num_class": "3", "max_depth": "2"},
        {
            "train": Channel({"iris.csv": csv_text(train_y, train_x)}, "csv"),
            "validation": Channel({"iris.csv": csv_text(valid_y, valid_x)}, "csv"),
        },
    )
    (train_x, train_y), (valid_x, valid_y) = diabetes
    regression = write_tree(
        base / "regression",
        {"num_round": "20", "objective": "reg:squarederror", "eval_metric": "rmse,mae"},
        {
            # No ContentType: SageMaker's XGBoost then reads LIBSVM.
            "train": Channel({"train.libsvm": libsvm_text(train_y, train_x)}),
            "validation": Channel({"valid.libsvm": libsvm_text(valid_y, valid_x)}),
        },
    )
    return train_all("xgboost", {"binary": binary, "multi": multi, "regression": regression})


@pytest.fixture(scope="module")
def worker(jobs: dict[str, Result], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """The real worker on the binary model; started early, awaited where used."""
    running = Worker(jobs["binary"].model_dir, tmp_path_factory.mktemp("worker") / "worker.log")
    try:
        yield running
    finally:
        running.stop()


def booster(model_dir: Path) -> xgboost.Booster:
    loaded = xgboost.Booster()
    loaded.load_model(bytearray((model_dir / "xgboost-model").read_bytes()))
    return loaded


def rounds(log: str) -> list[str]:
    return [line for line in log.splitlines() if "\ttrain-" in line]


def test_metric_definitions_cover_train_and_validation() -> None:
    names = {definition["Name"] for definition in algorithm.METRIC_DEFINITIONS}
    for metric in ("logloss", "auc", "rmse", "mlogloss", "accuracy", "f1", "error"):
        assert {f"train:{metric}", f"validation:{metric}"} <= names
    assert len(names) == len(algorithm.METRIC_DEFINITIONS)


def test_binary_rounds_are_logged_and_scraped(jobs: dict[str, Result]) -> None:
    log = jobs["binary"].log
    lines = rounds(log)
    assert lines[0].split("] ", 1)[1].startswith("[0]\ttrain-logloss:")
    assert "\tvalidation-accuracy:" in lines[0]
    values = metric_values(log, algorithm.METRIC_DEFINITIONS)
    assert set(values) == {
        f"{data}:{metric}"
        for data in ("train", "validation")
        for metric in ("logloss", "auc", "accuracy")
    }
    assert all(len(series) == len(lines) for series in values.values())
    # The validation regex takes the validation value, not the train value before it.
    first = dict(part.split(":") for part in lines[0].split("\t")[1:])
    assert values["validation:logloss"][0] == pytest.approx(float(first["validation-logloss"]))
    assert values["train:logloss"][0] == pytest.approx(float(first["train-logloss"]))
    assert values["validation:auc"][-1] > 0.95


def test_early_stopping_keeps_the_best_round(jobs: dict[str, Result]) -> None:
    result = jobs["binary"]
    assert "Best round on validation:" in result.log
    accuracy = metric_values(result.log, algorithm.METRIC_DEFINITIONS)["validation:accuracy"]
    assert len(accuracy) < 40
    best = int(np.argmax(accuracy))
    assert booster(result.model_dir).num_boosted_rounds() == best + 1


def test_default_metrics_per_objective(jobs: dict[str, Result]) -> None:
    multi = metric_values(jobs["multi"].log, algorithm.METRIC_DEFINITIONS)
    assert set(multi) == {"train:mlogloss", "validation:mlogloss"}
    assert len(multi["validation:mlogloss"]) == 10
    regression = metric_values(jobs["regression"].log, algorithm.METRIC_DEFINITIONS)
    assert set(regression) == {"train:rmse", "train:mae", "validation:rmse", "validation:mae"}
    assert regression["train:rmse"][-1] < regression["train:rmse"][0]
    assert "Train matrix has 350 rows and 10 columns" in jobs["regression"].log


def test_model_directory(jobs: dict[str, Result]) -> None:
    model_dir = jobs["multi"].model_dir
    raw = (model_dir / "xgboost-model").read_bytes()
    assert raw.startswith(b"{") and not raw.startswith(b'{"')  # UBJSON, not JSON
    assert sorted(p.name for p in (model_dir / "code").iterdir()) == [
        "inference.py",
        "sabio_algorithm_serving",
    ]
    config = json.loads(booster(model_dir).save_config())
    assert config["learner"]["objective"]["name"] == "multi:softprob"


@pytest.fixture(scope="module")
def binary_service(jobs: dict[str, Result]) -> Service:
    return load_service(jobs["binary"].model_dir)


def test_binary_serving_matches_the_booster(
    jobs: dict[str, Result], binary_service: Service, cancer: tuple[Data, Data]
) -> None:
    features, labels = cancer[1]
    expected = booster(jobs["binary"].model_dir).predict(xgboost.DMatrix(features))
    # No Content-Type and no Accept: CSV in, and CSV out as one comma-separated line.
    reply = invoke(binary_service, features_csv(features))
    assert (reply.status, reply.content_type) == (200, "text/csv"), reply.text
    assert "\n" not in reply.text
    scores = np.array([float(v) for v in reply.text.split(",")])
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    assert np.mean((scores > 0.5) == labels) > 0.9

    instances = {"instances": [{"features": row.tolist()} for row in features[:5]]}
    reply = invoke(binary_service, json.dumps(instances), "application/json", "application/json")
    assert reply.content_type == "application/json"
    np.testing.assert_allclose(reply.json(), expected[:5], rtol=1e-6)

    reply = invoke(binary_service, libsvm_text(labels[:5], features[:5]), "text/libsvm", "*/*")
    assert reply.content_type == "text/csv"
    np.testing.assert_allclose([float(v) for v in reply.text.split(",")], expected[:5], rtol=1e-6)


def test_multiclass_probabilities(jobs: dict[str, Result], iris: tuple[Data, Data]) -> None:
    features, labels = iris[1]
    service = load_service(jobs["multi"].model_dir)
    reply = invoke(service, features_csv(features), "text/csv", "text/csv")
    rows = [[float(v) for v in line.split(",")] for line in reply.text.splitlines()]
    probabilities = np.array(rows)
    assert probabilities.shape == (30, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert np.mean(np.argmax(probabilities, axis=1) == labels) > 0.85
    nested = invoke(
        service, json.dumps(features[:2].tolist()), "application/json", "application/json"
    )
    np.testing.assert_allclose(nested.json(), probabilities[:2], rtol=1e-6)


def test_regression_from_libsvm(jobs: dict[str, Result], diabetes: tuple[Data, Data]) -> None:
    features, labels = diabetes[1]
    service = load_service(jobs["regression"].model_dir)
    reply = invoke(service, libsvm_text(labels, features), "text/x-libsvm")
    predictions = np.array([float(v) for v in reply.text.split(",")])
    assert predictions.shape == labels.shape
    assert np.corrcoef(predictions, labels)[0, 1] > 0.5


def test_batch_and_selectable_output(
    jobs: dict[str, Result], cancer: tuple[Data, Data], monkeypatch: pytest.MonkeyPatch
) -> None:
    features = cancer[1][0][:3]
    monkeypatch.setenv("SAGEMAKER_BATCH", "true")
    batch = invoke(load_service(jobs["binary"].model_dir), features_csv(features), "text/csv")
    assert batch.text.endswith("\n")
    assert len(batch.text.splitlines()) == 3

    monkeypatch.delenv("SAGEMAKER_BATCH")
    monkeypatch.setenv(
        "SAGEMAKER_INFERENCE_OUTPUT", "predicted_label, probabilities,predicted_score"
    )
    service = load_service(jobs["binary"].model_dir)
    reply = invoke(service, features_csv(features), "text/csv", "application/json")
    predictions = reply.json()["predictions"]
    assert len(predictions) == 3
    first = predictions[0]
    assert first["predicted_label"] in (0, 1)
    assert first["probabilities"][0] == pytest.approx(1 - first["probabilities"][1])
    assert first["predicted_score"] is None  # not something a classifier predicts
    lines = invoke(service, features_csv(features), "text/csv", "application/jsonlines")
    assert [json.loads(line) for line in lines.text.splitlines()] == predictions


def test_request_errors(binary_service: Service) -> None:
    wrong_width = invoke(binary_service, "1,2,3\n", "text/csv")
    assert wrong_width.status == 400
    assert "30 features" in wrong_width.text
    assert invoke(binary_service, "1,2\n", "application/x-recordio-protobuf").status == 415
    assert invoke(binary_service, "1,2\n", "text/plain").status == 415
    row = ",".join(["1"] * 30)
    assert invoke(binary_service, row, "text/csv", "application/xml").status == 406
    assert invoke(binary_service, "1,abc", "text/csv").status == 400


def test_served_by_the_real_worker(worker: Worker, cancer: tuple[Data, Data]) -> None:
    features = cancer[1][0][:4]
    worker.wait_ready()
    reply = worker.request(
        "POST", "/invocations", features_csv(features), {"Content-Type": "text/csv"}
    )
    assert reply.status == 200, reply.text
    assert reply.content_type == "text/csv"
    assert len(reply.text.split(",")) == 4
    bad = worker.request("POST", "/invocations", "1,2\n", {"Content-Type": "text/csv"})
    assert bad.status == 400
