"""SageMaker's built-in XGBoost and Linear Learner: train through CreateTrainingJob on CSV,
then serve the model with the same image on an endpoint."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer, load_iris

from support.deploy import deploy, unique
from support.server import SabioServer
from support.training import channel, create_job, put_bytes, wait_job

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
LINEAR_LEARNER_IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1"


def csv(labels: np.ndarray, features: np.ndarray) -> bytes:
    buffer = io.StringIO()
    np.savetxt(buffer, np.column_stack([labels, features]), delimiter=",", fmt="%g")
    return buffer.getvalue().encode()


def put_split(server: SabioServer, prefix: str, labels: np.ndarray, features: np.ndarray) -> None:
    order = np.random.default_rng(0).permutation(labels.size)
    labels, features = labels[order], features[order]
    cut = int(labels.size * 0.8)
    put_bytes(server, f"{prefix}/train/data.csv", csv(labels[:cut], features[:cut]))
    put_bytes(server, f"{prefix}/validation/data.csv", csv(labels[cut:], features[cut:]))


def channels(prefix: str) -> list[dict[str, Any]]:
    return [
        channel("train", f"{prefix}/train/", ContentType="text/csv"),
        channel("validation", f"{prefix}/validation/", ContentType="text/csv"),
    ]


def start_job(
    server: SabioServer,
    sm: Any,
    name: str,
    image: str,
    hyperparameters: dict[str, str],
    labels: np.ndarray,
    features: np.ndarray,
) -> None:
    """Upload an 80/20 CSV split under `s3://training/<name>` and start a job on it."""
    prefix = f"s3://training/{name}"
    put_split(server, prefix, labels, features)
    create_job(sm, name, image=image, hyperparameters=hyperparameters, channels=channels(prefix))


def test_xgboost_builtin_trains_reports_metrics_and_serves(
    server: SabioServer, sm: Any, runtime: Any
):
    iris = load_iris()
    name = unique("xgb")
    start_job(
        server,
        sm,
        name,
        XGBOOST_IMAGE,
        {
            "objective": "multi:softprob",
            "num_class": "3",
            "num_round": "20",
            "max_depth": "3",
            "eval_metric": "mlogloss",
        },
        iris.target,
        iris.data,
    )
    described = wait_job(sm, name, timeout=180)
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    metrics = {m["MetricName"]: m["Value"] for m in described["FinalMetricDataList"]}
    assert metrics["validation:mlogloss"] < 0.5
    assert "train:mlogloss" in metrics

    endpoint = deploy(sm, described["ModelArtifacts"]["S3ModelArtifacts"], image=XGBOOST_IMAGE)
    rows = "\n".join(",".join(f"{v:g}" for v in row) for row in iris.data[[0, 60, 120]])
    body = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=rows)[
        "Body"
    ].read()
    probabilities = np.array(
        [[float(v) for v in line.split(",")] for line in body.decode().split()]
    )
    assert probabilities.shape == (3, 3)
    assert list(probabilities.argmax(axis=1)) == [0, 1, 2]
    sm.delete_endpoint(EndpointName=endpoint)


def test_linear_learner_binary_classifier_trains_and_serves(
    server: SabioServer, sm: Any, runtime: Any
):
    cancer = load_breast_cancer()
    name = unique("ll")
    start_job(
        server,
        sm,
        name,
        LINEAR_LEARNER_IMAGE,
        {"predictor_type": "binary_classifier", "epochs": "5", "feature_dim": "30"},
        cancer.target,
        cancer.data,
    )
    described = wait_job(sm, name, timeout=180)
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    assert any(m["MetricName"].startswith("validation:") for m in described["FinalMetricDataList"])

    endpoint = deploy(
        sm, described["ModelArtifacts"]["S3ModelArtifacts"], image=LINEAR_LEARNER_IMAGE
    )
    rows = "\n".join(",".join(f"{v:g}" for v in row) for row in cancer.data[:20])
    body = runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType="text/csv", Accept="application/json", Body=rows
    )["Body"].read()
    predictions = json.loads(body)["predictions"]
    labels = [p["predicted_label"] for p in predictions]
    assert np.mean(np.array(labels) == cancer.target[:20]) >= 0.8
    assert all(0.0 <= p["score"] <= 1.0 for p in predictions)
    sm.delete_endpoint(EndpointName=endpoint)


def test_a_builtin_algorithm_rejects_bad_hyperparameters(server: SabioServer, sm: Any):
    name = unique("xgbbad")
    iris = load_iris()
    start_job(
        server, sm, name, XGBOOST_IMAGE, {"objective": "binary:logistic"}, iris.target, iris.data
    )
    described = wait_job(sm, name, timeout=120)
    assert described["TrainingJobStatus"] == "Failed"
    assert "num_round" in described["FailureReason"]
