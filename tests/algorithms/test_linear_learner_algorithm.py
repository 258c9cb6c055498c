"""The built-in Linear Learner algorithm end to end: binary, multiclass and regression jobs as
real processes, their `#quality_metric` lines scraped with the algorithm's metric definitions,
and the models answering in Linear Learner's JSON through the Sabio model worker."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from algorithms.algorithm_harness import (
    Channel,
    Result,
    Worker,
    csv_text,
    features_csv,
    invoke,
    load_service,
    metric_values,
    train_all,
    write_tree,
)
from sabio.algorithms import linear_learner as algorithm
from sabio.serving.worker.service import Service

Data = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


def split(data: Data, *sizes: int) -> list[Data]:
    features, labels = data
    order = np.random.default_rng(3).permutation(labels.size)
    features, labels = features[order], labels[order]
    bounds = np.cumsum([0, *sizes, labels.size])
    return [(features[a:b], labels[a:b]) for a, b in itertools.pairwise(bounds)]


@pytest.fixture(scope="module")
def cancer() -> list[Data]:
    return split(load_breast_cancer(return_X_y=True), 400, 80)


@pytest.fixture(scope="module")
def iris() -> list[Data]:
    return split(load_iris(return_X_y=True), 120)


@pytest.fixture(scope="module")
def diabetes() -> list[Data]:
    return split(load_diabetes(return_X_y=True), 350)


def channels(parts: list[Data], names: tuple[str, ...]) -> dict[str, Channel]:
    return {
        name: Channel({f"{name}.csv": csv_text(labels, features)}, "text/csv")
        for name, (features, labels) in zip(names, parts, strict=True)
    }


@pytest.fixture(scope="module")
def jobs(
    tmp_path_factory: pytest.TempPathFactory,
    cancer: list[Data],
    iris: list[Data],
    diabetes: list[Data],
) -> dict[str, Result]:
    base = tmp_path_factory.mktemp("linear-learner")
    roots = {
        "binary": write_tree(
            base / "binary",
            {
                "predictor_type": "binary_classifier",
                "feature_dim": "30",
                "mini_batch_size": "100",
                "epochs": "15",
                "num_models": "32",  # accepted, with a warning
            },
            channels(cancer, ("train", "validation", "test")),
        ),
        "multi": write_tree(
            base / "multi",
            {"predictor_type": "multiclass_classifier", "num_classes": "3", "epochs": "20"},
            channels(iris, ("train", "test")),
        ),
        "regression": write_tree(
            base / "regression",
            {"predictor_type": "regressor", "feature_dim": "auto", "learning_rate": "0.02"},
            channels(diabetes, ("train", "test")),
        ),
    }
    return train_all("linear_learner", roots)


@pytest.fixture(scope="module")
def worker(jobs: dict[str, Result], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    running = Worker(jobs["multi"].model_dir, tmp_path_factory.mktemp("worker") / "worker.log")
    try:
        yield running
    finally:
        running.stop()


def test_metric_definitions_match_linear_learners() -> None:
    by_name = {d["Name"]: d["Regex"] for d in algorithm.METRIC_DEFINITIONS}
    assert by_name["test:binary_classification_accuracy"] == (
        r"#quality_metric: host=\S+, test binary_classification_accuracy <score>=(\S+)"
    )
    assert by_name["validation:objective_loss"] == (
        r"#quality_metric: host=\S+, epoch=\S+, validation \S+_objective <loss>=(\S+)"
    )
    assert {"train:progress", "train:throughput", "test:objective_loss"} <= set(by_name)
    assert len(by_name) == len(algorithm.METRIC_DEFINITIONS)


def test_binary_job_logs(jobs: dict[str, Result]) -> None:
    log = jobs["binary"].log
    values = metric_values(log, algorithm.METRIC_DEFINITIONS)
    epochs = len(values["train:objective_loss"])
    assert 1 <= epochs <= 15
    assert len(values["validation:objective_loss"]) == epochs
    assert values["train:progress"][-1] == pytest.approx(100 * epochs / 15, abs=1e-3)
    (accuracy,) = values["test:binary_classification_accuracy"]  # reported once, at the end
    assert accuracy > 0.9
    assert values["validation:binary_f_beta"][0] > 0.9
    assert values["test:objective_loss"][0] < 0.3
    assert len(values["validation:objective_loss:final"]) == 1
    assert "train:multiclass_accuracy" not in values
    assert "Hyperparameter num_models=32 has no effect" in log


def test_multiclass_and_regression_logs(jobs: dict[str, Result]) -> None:
    multi = metric_values(jobs["multi"].log, algorithm.METRIC_DEFINITIONS)
    assert multi["test:multiclass_accuracy"][0] > 0.85
    assert multi["test:multiclass_top_k_accuracy"] == [1.0]
    assert {"test:macro_f_beta", "test:dcg", "train:macro_precision"} <= set(multi)
    regression = metric_values(jobs["regression"].log, algorithm.METRIC_DEFINITIONS)
    assert regression["test:rmse"][0] == pytest.approx(regression["test:mse"][0] ** 0.5, rel=1e-4)
    assert "square_loss_objective" in jobs["regression"].log


def test_model_directory(jobs: dict[str, Result], cancer: list[Data]) -> None:
    model_dir = jobs["binary"].model_dir
    config = json.loads((model_dir / "linear-learner.json").read_text())
    assert config["predictor_type"] == "binary_classifier"
    assert config["feature_dim"] == 30
    assert 0 < config["threshold"] < 1
    # A plain scikit-learn pipeline, loadable without Sabio.
    pipeline = joblib.load(model_dir / "model.joblib")
    features, labels = cancer[2]
    assert np.mean(pipeline.predict(features) == labels) > 0.9
    assert (model_dir / "code" / "inference.py").is_file()


@pytest.fixture(scope="module")
def binary_service(jobs: dict[str, Result]) -> Service:
    return load_service(jobs["binary"].model_dir)


def test_binary_predictions(binary_service: Service, cancer: list[Data]) -> None:
    features, labels = cancer[2]
    reply = invoke(binary_service, features_csv(features), "text/csv")
    assert (reply.status, reply.content_type) == (200, "application/json"), reply.text
    predictions = reply.json()["predictions"]
    assert set(predictions[0]) == {"score", "predicted_label"}
    predicted = np.array([p["predicted_label"] for p in predictions])
    assert np.mean(predicted == labels) > 0.9
    assert all(0 <= p["score"] <= 1 for p in predictions)

    dense = {"instances": [{"features": row.tolist()} for row in features[:3]]}
    tensor = {
        "instances": [{"data": {"features": {"values": row.tolist()}}} for row in features[:3]]
    }
    for document in (dense, tensor, features[:3].tolist()):
        again = invoke(binary_service, json.dumps(document), "application/json")
        assert again.json()["predictions"] == predictions[:3]
    lines = "".join(json.dumps({"features": row.tolist()}) + "\n" for row in features[:3])
    jsonlines = invoke(binary_service, lines, "application/jsonlines", "application/jsonlines")
    assert [json.loads(line) for line in jsonlines.text.splitlines()] == predictions[:3]


def test_multiclass_and_regression_predictions(
    jobs: dict[str, Result], iris: list[Data], diabetes: list[Data]
) -> None:
    features, labels = iris[1]
    reply = invoke(load_service(jobs["multi"].model_dir), features_csv(features), "text/csv")
    predictions = reply.json()["predictions"]
    assert len(predictions[0]["score"]) == 3
    assert sum(predictions[0]["score"]) == pytest.approx(1.0)
    assert np.mean([p["predicted_label"] for p in predictions] == labels) > 0.85

    features, labels = diabetes[1]
    sparse = {"keys": [0, 2], "shape": [10], "values": [0.01, 0.05]}
    service = load_service(jobs["regression"].model_dir)
    reply = invoke(service, features_csv(features), "text/csv")
    scores = np.array([p["score"] for p in reply.json()["predictions"]])
    assert np.corrcoef(scores, labels)[0, 1] > 0.5
    one = invoke(
        service, json.dumps({"instances": [{"data": {"features": sparse}}]}), "application/json"
    )
    assert list(one.json()["predictions"][0]) == ["score"]


def test_request_errors(binary_service: Service) -> None:
    assert invoke(binary_service, "1,2,3\n", "text/csv").status == 400
    assert invoke(binary_service, "{}", "application/x-recordio-protobuf").status == 415
    row = ",".join(["1"] * 30)
    assert invoke(binary_service, row, "text/csv", "text/csv").status == 406
    missing = invoke(binary_service, row + ",\n", "text/csv")
    assert missing.status == 400


def test_served_by_the_real_worker(worker: Worker, iris: list[Data]) -> None:
    features = iris[1][0][:2]
    worker.wait_ready()
    body = json.dumps({"instances": [{"features": row.tolist()} for row in features]})
    reply = worker.request(
        "POST", "/invocations", body, {"Content-Type": "application/json", "Accept": "*/*"}
    )
    assert reply.status == 200, reply.text
    assert reply.content_type == "application/json"
    assert len(reply.json()["predictions"]) == 2
