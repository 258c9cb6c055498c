"""The linear models behind Linear Learner, trained an epoch at a time with scikit-learn.

Binary classifiers and regressors use ``SGDClassifier``/``SGDRegressor`` (every Linear Learner
loss, L1 and weight decay); multiclass classifiers, and the others when ``optimizer=adam``,
use a multilayer perceptron without hidden layers, which is exactly a softmax (or logistic,
or linear) model trained with Adam. Features are standardised by a fitted ``StandardScaler``
in front of the model, and labels of regressors by folding their scale into the weights, so
what is saved is a plain scikit-learn ``Pipeline``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sabio.algorithms.data import FloatArray

BINARY = "binary_classifier"
MULTICLASS = "multiclass_classifier"
REGRESSOR = "regressor"

# Linear Learner's loss names -> how each backend spells them.
SGD_CLASSIFIER_LOSSES = {"logistic": "log_loss", "hinge_loss": "hinge"}
SGD_REGRESSOR_LOSSES = {
    "squared_loss": "squared_error",
    "absolute_loss": "epsilon_insensitive",
    "eps_insensitive_absolute_loss": "epsilon_insensitive",
    "eps_insensitive_squared_loss": "squared_epsilon_insensitive",
    "huber_loss": "huber",
}
NEURAL_LOSSES = frozenset({"logistic", "softmax_loss", "squared_loss"})
OBJECTIVE_NAMES = {
    "logistic": "binary_classification_cross_entropy",
    "hinge_loss": "binary_classification_hinge_loss",
    "softmax_loss": "multiclass_cross_entropy",
    "squared_loss": "square_loss",
    "absolute_loss": "absolute_loss",
    "eps_insensitive_absolute_loss": "eps_insensitive_absolute_loss",
    "eps_insensitive_squared_loss": "eps_insensitive_squared_loss",
    "huber_loss": "huber_loss",
}
"""How the log names each loss, as ``<name>_objective``."""
MIN_STEPS = 8
"""Fewest mini-batches an epoch of the Adam (neural) backend takes."""


@dataclass(frozen=True)
class ModelSpec:
    """Everything the trainer needs to know about the model, resolved from hyperparameters."""

    predictor_type: str
    loss: str
    classes: tuple[int, ...]
    backend: str  # "sgd" or "neural"
    optimizer: str  # for the neural backend: "adam" or "sgd"
    learning_rate: float | None
    l1: float
    wd: float
    use_bias: bool
    mini_batch_size: int
    momentum: float
    loss_insensitivity: float
    huber_delta: float

    @property
    def classifier(self) -> bool:
        return self.predictor_type != REGRESSOR


@dataclass
class LabelScale:
    """Regressor labels are trained standardised; predictions are mapped back."""

    mean: float = 0.0
    std: float = 1.0

    def forward(self, labels: FloatArray) -> FloatArray:
        return (labels - self.mean) / self.std

    def backward(self, predictions: FloatArray) -> FloatArray:
        return predictions * self.std + self.mean


def build_estimator(spec: ModelSpec, rows: int) -> Any:
    """The untrained scikit-learn model for ``spec``."""
    if spec.backend == "neural":
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        # At least MIN_STEPS steps an epoch: on small data, whole-data batches would leave a
        # few epochs too few steps to get anywhere.
        batch = min(spec.mini_batch_size, max(1, math.ceil(rows / MIN_STEPS)))
        steps = math.ceil(rows / batch)
        rate = spec.learning_rate or 0.2 / math.sqrt(steps)
        options: dict[str, Any] = {
            "hidden_layer_sizes": (),
            "solver": spec.optimizer,
            "alpha": spec.wd,
            "batch_size": batch,
            "learning_rate_init": rate,
            "random_state": 0,
        }
        if spec.optimizer == "sgd":
            options["momentum"] = spec.momentum
        if spec.classifier:
            return MLPClassifier(**options)
        return MLPRegressor(**options)
    from sklearn.linear_model import SGDClassifier, SGDRegressor

    alpha = spec.l1 + spec.wd
    penalty: dict[str, Any]
    if alpha == 0:
        penalty = {"penalty": None}
    elif spec.l1 == 0:
        penalty = {"penalty": "l2", "alpha": alpha}
    else:
        penalty = {"penalty": "elasticnet", "alpha": alpha, "l1_ratio": spec.l1 / alpha}
    common = {"fit_intercept": spec.use_bias, "random_state": 0, **penalty}
    if spec.classifier:
        rate = spec.learning_rate or 0.1
        return SGDClassifier(
            loss=SGD_CLASSIFIER_LOSSES[spec.loss],
            learning_rate="invscaling",
            eta0=rate,
            power_t=0.5,
            **common,
        )
    epsilon = 0.0 if spec.loss == "absolute_loss" else spec.loss_insensitivity
    if spec.loss == "huber_loss":
        epsilon = spec.huber_delta
    return SGDRegressor(
        loss=SGD_REGRESSOR_LOSSES[spec.loss],
        epsilon=epsilon,
        learning_rate="invscaling",
        eta0=spec.learning_rate or 0.01,
        power_t=0.25,
        **common,
    )


def train_epoch(
    estimator: Any,
    spec: ModelSpec,
    features: FloatArray,
    labels: FloatArray,
    weights: FloatArray | None,
    rng: np.random.Generator,
) -> None:
    """One pass over the (standardised) training data."""
    classes = np.asarray(spec.classes) if spec.classifier else None
    if spec.backend == "neural":
        if classes is not None:
            estimator.partial_fit(features, labels, classes=classes, sample_weight=weights)
        else:
            estimator.partial_fit(features, labels, sample_weight=weights)
        return
    order = rng.permutation(labels.shape[0])
    for start in range(0, order.size, spec.mini_batch_size):
        batch = order[start : start + spec.mini_batch_size]
        batch_weights = None if weights is None else weights[batch]
        if classes is not None:
            estimator.partial_fit(
                features[batch], labels[batch], classes=classes, sample_weight=batch_weights
            )
        else:
            estimator.partial_fit(features[batch], labels[batch], sample_weight=batch_weights)


def fold_label_scale(estimator: Any, scale: LabelScale) -> None:
    """Make a regressor trained on standardised labels predict the original ones."""
    if hasattr(estimator, "coefs_"):
        estimator.coefs_[-1] = estimator.coefs_[-1] * scale.std
        estimator.intercepts_[-1] = estimator.intercepts_[-1] * scale.std + scale.mean
    else:
        estimator.coef_ = estimator.coef_ * scale.std
        estimator.intercept_ = estimator.intercept_ * scale.std + scale.mean


def scores(estimator: Any, spec: ModelSpec, features: FloatArray) -> FloatArray:
    """What the model serves as ``score``: P(class 1), class probabilities, a margin or a value."""
    if spec.predictor_type == REGRESSOR:
        return np.asarray(estimator.predict(features), dtype=np.float64)
    if hasattr(estimator, "predict_proba") and spec.loss != "hinge_loss":
        probabilities = np.asarray(estimator.predict_proba(features), dtype=np.float64)
        return probabilities[:, 1] if spec.predictor_type == BINARY else probabilities
    return np.asarray(estimator.decision_function(features), dtype=np.float64)


def objective_loss(
    spec: ModelSpec, labels: FloatArray, score: FloatArray, weights: FloatArray | None = None
) -> float:
    """The mean training loss, on the labels' own scale."""
    if spec.loss in ("logistic", "softmax_loss"):
        from sklearn.metrics import log_loss

        probabilities = np.column_stack([1 - score, score]) if score.ndim == 1 else score
        return float(
            log_loss(labels, probabilities, labels=list(spec.classes), sample_weight=weights)
        )
    if spec.loss == "hinge_loss":
        signs = 2 * labels - 1
        losses = np.maximum(0.0, 1 - signs * score)
    else:
        residual = np.abs(labels - score)
        if spec.loss == "squared_loss":
            losses = residual**2
        elif spec.loss == "absolute_loss":
            losses = residual
        elif spec.loss == "huber_loss":
            delta = spec.huber_delta
            losses = np.where(
                residual <= delta, 0.5 * residual**2, delta * (residual - 0.5 * delta)
            )
        else:
            excess = np.maximum(0.0, residual - spec.loss_insensitivity)
            losses = excess**2 if spec.loss == "eps_insensitive_squared_loss" else excess
    return float(np.average(losses, weights=weights))


# Choosing the binary decision threshold (binary_classifier_model_selection_criteria).


def choose_threshold(
    labels: FloatArray,
    score: FloatArray,
    criterion: str,
    default: float,
    *,
    f_beta: float = 1.0,
    target_recall: float = 0.8,
    target_precision: float = 0.8,
) -> float:
    """The score above which a record is positive, best for ``criterion`` on these labels."""
    if criterion == "loss_function" or labels.size == 0:
        return default
    order = np.argsort(-score, kind="stable")
    ranked, truth = score[order], labels[order] > 0.5
    # Candidate i predicts positive the i+1 highest scores; only the last of tied scores counts.
    last = np.r_[ranked[1:] != ranked[:-1], True]
    true_positives = np.cumsum(truth)[last].astype(np.float64)
    predicted = (np.arange(truth.size) + 1)[last].astype(np.float64)
    thresholds = ranked[last]
    positives = float(truth.sum())
    negatives = truth.size - positives
    false_positives = predicted - true_positives
    precision = true_positives / predicted
    recall = true_positives / positives if positives else np.zeros_like(true_positives)
    if criterion == "accuracy":
        objective = (true_positives + negatives - false_positives) / truth.size
    elif criterion == "f_beta":
        beta2 = f_beta**2
        denominator = beta2 * precision + recall
        objective = np.where(
            denominator > 0, (1 + beta2) * precision * recall / np.maximum(denominator, 1e-300), 0
        )
    elif criterion == "precision_at_target_recall":
        objective = np.where(recall >= target_recall, precision, -1.0)
    else:  # recall_at_target_precision
        objective = np.where(precision >= target_precision, recall, -1.0)
    if objective.max() < 0:
        return default
    best = np.flatnonzero(objective == objective.max())
    return float(thresholds[best[np.argmin(np.abs(thresholds[best] - default))]])


# Quality metrics, named as Linear Learner logs them.


def binary_metrics(
    labels: FloatArray, score: FloatArray, threshold: float, beta: float
) -> list[tuple[str, str, float]]:
    """``(metric, kind, value)`` with kind ``score`` or ``loss``, as the log line shows."""
    predicted = score >= threshold
    truth = labels > 0.5
    true_positives = float(np.sum(predicted & truth))
    precision = true_positives / max(float(predicted.sum()), 1.0)
    recall = true_positives / max(float(truth.sum()), 1.0)
    beta2 = beta**2
    denominator = beta2 * precision + recall
    f_score = (1 + beta2) * precision * recall / denominator if denominator else 0.0
    return [
        ("binary_classification_accuracy", "score", float(np.mean(predicted == truth))),
        (f"binary_f_{beta:.3f}", "score", f_score),
        ("precision", "score", precision),
        ("recall", "score", recall),
    ]


def multiclass_metrics(
    labels: FloatArray, probabilities: FloatArray, top_k: int, beta: float
) -> list[tuple[str, str, float]]:
    from sklearn.metrics import fbeta_score, precision_score, recall_score

    truth = labels.astype(np.int64)
    predicted = np.argmax(probabilities, axis=1)
    classes = list(range(probabilities.shape[1]))
    # The rank of the true class among the scores, 1 being the best.
    true_scores = probabilities[np.arange(truth.size), truth]
    rank = 1 + np.sum(probabilities > true_scores[:, None], axis=1)
    macro = {"labels": classes, "average": "macro", "zero_division": 0}
    return [
        ("multiclass_accuracy", "score", float(np.mean(predicted == truth))),
        (f"multiclass_top_k_accuracy_{top_k}", "score", float(np.mean(rank <= top_k))),
        ("macro_precision", "score", float(precision_score(truth, predicted, **macro))),
        ("macro_recall", "score", float(recall_score(truth, predicted, **macro))),
        (f"macro_f_{beta:.3f}", "score", float(fbeta_score(truth, predicted, beta=beta, **macro))),
        ("dcg", "score", float(np.mean(1.0 / np.log2(1.0 + rank)))),
    ]


def regression_metrics(labels: FloatArray, predictions: FloatArray) -> list[tuple[str, str, float]]:
    errors = labels - predictions
    mse = float(np.mean(errors**2))
    return [
        ("mse", "loss", mse),
        ("rmse", "loss", math.sqrt(mse)),
        ("absolute_loss", "loss", float(np.mean(np.abs(errors)))),
    ]


def quality_metrics(
    spec: ModelSpec,
    labels: FloatArray,
    score: FloatArray,
    *,
    threshold: float,
    beta: float,
    top_k: int,
) -> Sequence[tuple[str, str, float]]:
    if spec.predictor_type == BINARY:
        return binary_metrics(labels, score, threshold, beta)
    if spec.predictor_type == MULTICLASS:
        return multiclass_metrics(labels, score, top_k, beta)
    return regression_metrics(labels, score)
