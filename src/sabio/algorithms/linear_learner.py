"""SageMaker's built-in Linear Learner algorithm (the ``linear-learner:1`` contract).

``python -m sabio.algorithms.linear_learner train`` fits a linear binary classifier, multiclass
classifier or regressor (``predictor_type``) to the ``train`` channel, watching ``validation``
for early stopping and for the binary decision threshold, and reporting on ``test``. Channels
must be ``text/csv`` (label first, no header): SageMaker's default, RecordIO-protobuf, is not
read. Metrics are logged in Linear Learner's format, e.g.
``#quality_metric: host=algo-1, test binary_classification_accuracy <score>=0.96``.

The model is ``model/model.joblib`` (a scikit-learn ``Pipeline``: ``StandardScaler`` then the
linear model), ``model/linear-learner.json`` (predictor type, decision threshold) and
``model/code/``, which serves Linear Learner's JSON responses.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sabio.algorithms import MetricDefinition, data
from sabio.algorithms.hyperparameters import Hyperparameters
from sabio.algorithms.linear_models import (
    BINARY,
    MULTICLASS,
    NEURAL_LOSSES,
    OBJECTIVE_NAMES,
    REGRESSOR,
    LabelScale,
    ModelSpec,
    build_estimator,
    choose_threshold,
    fold_label_scale,
    objective_loss,
    quality_metrics,
    scores,
    train_epoch,
)
from sabio.algorithms.model_code import install_inference_code
from sabio.algorithms.opt_ml import (
    ClientError,
    OptMl,
    configure_logging,
    require_channel,
    run_training,
)

logger = logging.getLogger("sabio.algorithms.linear_learner")

REQUIRED_CHANNELS: tuple[str, ...] = ("train",)
OPTIONAL_CHANNELS: tuple[str, ...] = ("validation", "test")
MODEL_FILE = "model.joblib"
CONFIG_FILE = "linear-learner.json"

_HOST = r"#quality_metric: host=\S+, "
_SCORES = (
    "binary_classification_accuracy",
    "precision",
    "recall",
    "multiclass_accuracy",
    "macro_precision",
    "macro_recall",
    "dcg",
)
_PATTERNED = {
    "binary_f_beta": r"binary_f_\S+",
    "macro_f_beta": r"macro_f_\S+",
    "multiclass_top_k_accuracy": r"multiclass_top_k_accuracy_\S+",
}
_LOSSES = ("mse", "rmse", "absolute_loss")


def _metric_definitions() -> list[MetricDefinition]:
    definitions: list[MetricDefinition] = []
    for channel in ("train", "validation", "test"):
        for metric in _SCORES:
            regex = rf"{_HOST}{channel} {metric} <score>=(\S+)"
            definitions.append({"Name": f"{channel}:{metric}", "Regex": regex})
        for name, pattern in _PATTERNED.items():
            regex = rf"{_HOST}{channel} {pattern} <score>=(\S+)"
            definitions.append({"Name": f"{channel}:{name}", "Regex": regex})
        for metric in _LOSSES:
            regex = rf"{_HOST}{channel} {metric} <loss>=(\S+)"
            definitions.append({"Name": f"{channel}:{metric}", "Regex": regex})
        final = rf"{_HOST}{channel} \S+_objective <loss>=(\S+)"
        if channel == "test":
            definitions.append({"Name": "test:objective_loss", "Regex": final})
        else:
            per_epoch = rf"{_HOST}epoch=\S+, {channel} \S+_objective <loss>=(\S+)"
            definitions.append({"Name": f"{channel}:objective_loss", "Regex": per_epoch})
            definitions.append({"Name": f"{channel}:objective_loss:final", "Regex": final})
    definitions.append(
        {"Name": "train:progress", "Regex": r"#progress_metric: host=\S+, completed (\S+) %"}
    )
    definitions.append(
        {
            "Name": "train:throughput",
            "Regex": r"#throughput_metric: host=\S+, train throughput=(\S+) records/second",
        }
    )
    return definitions


METRIC_DEFINITIONS: list[MetricDefinition] = _metric_definitions()
"""Linear Learner's metric definitions, as SageMaker registers them for its training jobs."""

_LOSSES_BY_TYPE = {
    BINARY: ("logistic", "hinge_loss"),
    MULTICLASS: ("softmax_loss",),
    REGRESSOR: (
        "squared_loss",
        "absolute_loss",
        "eps_insensitive_squared_loss",
        "eps_insensitive_absolute_loss",
        "huber_loss",
    ),
}
_DEFAULT_LOSS = {BINARY: "logistic", MULTICLASS: "softmax_loss", REGRESSOR: "squared_loss"}
_CRITERIA = (
    "accuracy",
    "f_beta",
    "precision_at_target_recall",
    "recall_at_target_precision",
    "loss_function",
)
_IGNORED = (
    "num_models",
    "num_calibration_samples",
    "init_method",
    "init_scale",
    "init_sigma",
    "init_bias",
    "beta_1",
    "beta_2",
    "bias_lr_mult",
    "bias_wd_mult",
    "lr_scheduler_step",
    "lr_scheduler_factor",
    "lr_scheduler_minimum_lr",
    "unbias_data",
    "unbias_label",
    "margin",
    "quantile",
    "_kvstore",
    "_num_gpus",
    "_num_kv_servers",
    "_log_level",
)
DEFAULT_WEIGHT_DECAY = 1e-4


@dataclass(frozen=True)
class Settings:
    spec: ModelSpec
    feature_dim: int | None
    epochs: int
    normalize_data: bool
    normalize_label: bool
    num_point_for_scaler: int
    positive_weight: float | str | None
    balance_multiclass_weights: bool
    criterion: str
    f_beta: float
    target_recall: float
    target_precision: float
    patience: int
    tolerance: float
    top_k: int


def parse_hyperparameters(raw: dict[str, str]) -> Settings:
    """Validate the job's hyperparameters the way Linear Learner does."""
    hp = Hyperparameters(raw)
    predictor_type = hp.choice("predictor_type", (BINARY, MULTICLASS, REGRESSOR))
    if predictor_type is None:
        raise ClientError("Hyperparameter predictor_type is required")
    classes: tuple[int, ...] = ()
    if predictor_type == MULTICLASS:
        num_classes = hp.integer("num_classes", minimum=3, maximum=1_000_000)
        if num_classes is None:
            raise ClientError(
                "Hyperparameter num_classes is required when predictor_type is "
                "multiclass_classifier"
            )
        classes = tuple(range(num_classes))
    elif predictor_type == BINARY:
        classes = (0, 1)
        hp.ignore(["num_classes"])
    else:
        hp.ignore(["num_classes"])
    loss = _loss(hp, predictor_type)
    l1 = 0.0 if hp.is_auto("l1") else hp.number("l1", 0.0, minimum=0)
    wd = DEFAULT_WEIGHT_DECAY if hp.is_auto("wd") else hp.number("wd", 0.0, minimum=0)
    rate = None
    if not hp.is_auto("learning_rate"):
        rate = hp.number("learning_rate", 0.01, minimum=0, exclusive_minimum=True)
    optimizer = hp.choice("optimizer", ("auto", "sgd", "adam", "rmsprop"), "auto")
    use_bias = hp.boolean("use_bias", True)
    backend, neural_optimizer = _backend(predictor_type, loss, optimizer, l1, use_bias)
    spec = ModelSpec(
        predictor_type=predictor_type,
        loss=loss,
        classes=classes,
        backend=backend,
        optimizer=neural_optimizer,
        learning_rate=rate,
        l1=l1,
        wd=wd,
        use_bias=use_bias,
        mini_batch_size=hp.integer("mini_batch_size", 1000, minimum=1),
        momentum=0.9 if hp.is_auto("momentum") else hp.number("momentum", 0.0, minimum=0),
        loss_insensitivity=hp.number("loss_insensitivity", 0.01, minimum=0, exclusive_minimum=True),
        huber_delta=hp.number("huber_delta", 1.0, minimum=0, exclusive_minimum=True),
    )
    settings = Settings(
        spec=spec,
        feature_dim=None if hp.is_auto("feature_dim") else hp.integer("feature_dim", minimum=1),
        epochs=hp.integer("epochs", 15, minimum=1),
        normalize_data=hp.boolean("normalize_data", True),
        normalize_label=_normalize_label(hp, predictor_type),
        num_point_for_scaler=hp.integer("num_point_for_scaler", 10_000, minimum=1),
        positive_weight=_positive_weight(hp, predictor_type),
        balance_multiclass_weights=hp.boolean("balance_multiclass_weights", False),
        criterion=hp.choice("binary_classifier_model_selection_criteria", _CRITERIA, "accuracy"),
        f_beta=hp.number("f_beta", 1.0, minimum=0, exclusive_minimum=True),
        target_recall=hp.number("target_recall", 0.8, minimum=0, maximum=1),
        target_precision=hp.number("target_precision", 0.8, minimum=0, maximum=1),
        patience=hp.integer("early_stopping_patience", 3, minimum=1),
        tolerance=hp.number("early_stopping_tolerance", 0.001, minimum=0),
        top_k=hp.integer("accuracy_top_k", 3, minimum=1),
    )
    hp.ignore(_IGNORED)
    hp.warn_unread()
    return settings


def _loss(hp: Hyperparameters, predictor_type: str) -> str:
    if hp.is_auto("loss"):
        return _DEFAULT_LOSS[predictor_type]
    loss = hp.required("loss")
    if loss == "quantile_loss":
        raise ClientError("Hyperparameter loss: quantile_loss is not supported by Sabio")
    allowed = _LOSSES_BY_TYPE[predictor_type]
    if loss not in allowed:
        raise ClientError(
            f"Hyperparameter loss: {loss!r} does not fit predictor_type {predictor_type}; "
            f"use one of auto, {', '.join(allowed)}"
        )
    return loss


def _backend(
    predictor_type: str, loss: str, optimizer: str, l1: float, use_bias: bool
) -> tuple[str, str]:
    """``(backend, neural optimizer)``: SGD models unless Adam or softmax is called for."""
    if predictor_type == MULTICLASS:
        if l1:
            logger.warning("l1 has no effect on multiclass_classifier models; ignoring it")
        if not use_bias:
            logger.warning("use_bias=false has no effect on multiclass_classifier models")
        return "neural", "sgd" if optimizer == "sgd" else "adam"
    if optimizer in ("adam", "rmsprop"):
        if loss in NEURAL_LOSSES and not l1 and use_bias:
            return "neural", "adam"
        logger.warning(
            "optimizer=%s needs a logistic or squared loss, no l1 and a bias; training with SGD",
            optimizer,
        )
    return "sgd", "sgd"


def _normalize_label(hp: Hyperparameters, predictor_type: str) -> bool:
    if hp.is_auto("normalize_label"):
        return predictor_type == REGRESSOR
    normalize = hp.boolean("normalize_label", False)
    if normalize and predictor_type != REGRESSOR:
        raise ClientError("Hyperparameter normalize_label must be false for classifiers")
    return normalize


def _positive_weight(hp: Hyperparameters, predictor_type: str) -> float | str | None:
    if hp.is_auto("positive_example_weight_mult"):
        return None
    if predictor_type != BINARY:
        hp.ignore(["positive_example_weight_mult"])
        return None
    if (hp.text("positive_example_weight_mult") or "").lower() == "balanced":
        return "balanced"
    return hp.number("positive_example_weight_mult", 1.0, minimum=0, exclusive_minimum=True)


# Data


def load_datasets(
    channels: dict[str, Path], content_types: dict[str, str], settings: Settings
) -> dict[str, data.Dataset]:
    """``train`` and, when given, ``validation`` and ``test``, checked against the settings."""
    require_channel(channels, "train")
    for name in sorted(set(channels) - {"train", *OPTIONAL_CHANNELS}):
        logger.warning('Channel "%s" is not one Linear Learner reads; ignoring it', name)
    datasets: dict[str, data.Dataset] = {}
    for name in ("train", *OPTIONAL_CHANNELS):
        if name not in channels:
            continue
        kind = data.content_type(content_types.get(name), data.RECORDIO_PROTOBUF)
        if kind != data.CSV:
            reason = (
                "no ContentType, which for Linear Learner means application/x-recordio-protobuf"
                if name not in content_types
                else f"ContentType {content_types[name]}"
            )
            raise ClientError(
                f'Channel "{name}" has {reason}: Sabio\'s Linear Learner reads only text/csv '
                "(label in the first column, no header); set the channel's ContentType to "
                "text/csv"
            )
        dataset = data.read_csv(channels[name], name)
        _check(dataset, settings)
        if name != "train" and dataset.columns != datasets["train"].columns:
            raise ClientError(
                f'Channel "{name}" has {dataset.columns} features, but channel "train" has '
                f"{datasets['train'].columns}"
            )
        datasets[name] = dataset
        logger.info("Channel %s: %d records with %d features", name, dataset.rows, dataset.columns)
    return datasets


def _check(dataset: data.Dataset, settings: Settings) -> None:
    where = f'Channel "{dataset.channel}"'
    if settings.feature_dim is not None and dataset.columns != settings.feature_dim:
        raise ClientError(
            f"{where} has {dataset.columns} features, but feature_dim is {settings.feature_dim}"
        )
    if not np.isfinite(dataset.features).all():
        row = int(np.flatnonzero(~np.isfinite(dataset.features).all(axis=1))[0]) + 1
        raise ClientError(f"{where}: record {row} has a missing or infinite feature value")
    labels = dataset.labels
    spec = settings.spec
    if not np.isfinite(labels).all():
        raise ClientError(f"{where} has non-finite labels")
    if spec.predictor_type == BINARY and not np.isin(labels, (0.0, 1.0)).all():
        raise ClientError(f"{where}: binary_classifier labels must be 0 or 1")
    if spec.predictor_type == MULTICLASS:
        count = len(spec.classes)
        if (labels != np.floor(labels)).any() or labels.min() < 0 or labels.max() >= count:
            raise ClientError(
                f"{where}: multiclass_classifier labels must be integers from 0 to {count - 1} "
                f"(num_classes={count})"
            )


def _sample_weights(
    labels: np.ndarray[Any, Any], settings: Settings
) -> np.ndarray[Any, Any] | None:
    spec = settings.spec
    if spec.predictor_type == BINARY and settings.positive_weight is not None:
        if settings.positive_weight == "balanced":
            positives = float(labels.sum())
            weight = (labels.size - positives) / positives if positives else 1.0
        else:
            weight = float(settings.positive_weight)
        return np.where(labels > 0.5, weight, 1.0)
    if spec.predictor_type == MULTICLASS and settings.balance_multiclass_weights:
        counts = np.bincount(labels.astype(np.int64), minlength=len(spec.classes))
        per_class = labels.size / (len(spec.classes) * np.maximum(counts, 1))
        return np.asarray(per_class[labels.astype(np.int64)], dtype=np.float64)
    return None


# Training


@dataclass
class Trained:
    pipeline: Any
    threshold: float | None


def _log_quality(
    host: str, channel: str, name: str, kind: str, value: float, epoch: int | None = None
) -> None:
    where = f"epoch={epoch}, " if epoch is not None else ""
    logger.info(
        "#quality_metric: host=%s, %s%s %s <%s>=%s", host, where, channel, name, kind, _fmt(value)
    )


def _fmt(value: float) -> str:
    return f"{value:.6g}" if math.isfinite(value) else str(value)


def fit(settings: Settings, datasets: dict[str, data.Dataset], host: str) -> Trained:
    """Train epoch by epoch, keep the best epoch's model, and choose the decision threshold."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    spec = settings.spec
    train_set = datasets["train"]
    rng = np.random.default_rng(0)
    scaler: Any = "passthrough"
    features = {name: d.features for name, d in datasets.items()}
    if settings.normalize_data:
        sample = rng.permutation(train_set.rows)[: settings.num_point_for_scaler]
        scaler = StandardScaler().fit(train_set.features[sample])
        features = {name: scaler.transform(d.features) for name, d in datasets.items()}
    scale = LabelScale()
    if settings.normalize_label:
        std = float(np.std(train_set.labels))
        scale = LabelScale(float(np.mean(train_set.labels)), std if std > 0 else 1.0)
    run = _Run(settings, datasets, features, scale, host, rng)
    best = run.epochs(build_estimator(spec, train_set.rows))
    if settings.normalize_label:
        fold_label_scale(best, scale)
    threshold = (
        _threshold(settings, datasets, features, best) if spec.predictor_type == BINARY else None
    )
    for name, dataset in datasets.items():
        score = scores(best, spec, features[name])
        _log_quality(host, name, run.objective, "loss", objective_loss(spec, dataset.labels, score))
        for metric, kind, value in quality_metrics(
            spec,
            dataset.labels,
            score,
            threshold=threshold or 0.0,
            beta=settings.f_beta,
            top_k=settings.top_k,
        ):
            _log_quality(host, name, metric, kind, value)
    return Trained(Pipeline([("scaler", scaler), ("model", best)]), threshold)


@dataclass
class _Run:
    """The epoch loop, with Linear Learner's early stopping on the watched loss."""

    settings: Settings
    datasets: dict[str, data.Dataset]
    features: dict[str, Any]
    scale: LabelScale
    host: str
    rng: np.random.Generator

    @property
    def objective(self) -> str:
        return OBJECTIVE_NAMES[self.settings.spec.loss] + "_objective"

    def loss(self, model: Any, name: str) -> float:
        spec = self.settings.spec
        score = scores(model, spec, self.features[name])
        if not np.isfinite(score).all():
            return math.inf
        if spec.predictor_type == REGRESSOR:
            score = self.scale.backward(score)
        return objective_loss(spec, self.datasets[name].labels, score)

    def epochs(self, estimator: Any) -> Any:
        """Train up to ``epochs`` epochs; the model of the epoch with the lowest loss."""
        settings, spec, host = self.settings, self.settings.spec, self.host
        train_set = self.datasets["train"]
        labels = train_set.labels
        if spec.predictor_type == REGRESSOR:
            labels = self.scale.forward(labels)
        weights = _sample_weights(train_set.labels, settings)
        watching = [name for name in ("train", "validation") if name in self.datasets]
        watched = watching[-1]
        best_loss, best, stale, done = math.inf, None, 0, 0
        started = time.monotonic()
        for epoch in range(settings.epochs):
            train_epoch(estimator, spec, self.features["train"], labels, weights, self.rng)
            done = epoch + 1
            losses = {name: self.loss(estimator, name) for name in watching}
            for name, value in losses.items():
                _log_quality(host, name, self.objective, "loss", value, epoch)
            logger.info(
                "#progress_metric: host=%s, completed %.3f %% of epochs",
                host,
                100.0 * done / settings.epochs,
            )
            current = losses[watched]
            if not math.isfinite(current):
                raise ClientError(
                    f"Training diverged in epoch {epoch} (the {watched} loss is {current}): "
                    "lower learning_rate, or set normalize_data to true"
                )
            if best is None or current < best_loss - settings.tolerance * abs(best_loss):
                best_loss, best, stale = current, copy.deepcopy(estimator), 0
                continue
            stale += 1
            if stale >= settings.patience:
                logger.info(
                    "Early stopping: the %s loss has not improved for %d epochs; using epoch %d",
                    watched,
                    stale,
                    epoch - stale,
                )
                break
        elapsed = max(time.monotonic() - started, 1e-9)
        logger.info(
            "#throughput_metric: host=%s, train throughput=%.1f records/second",
            host,
            train_set.rows * done / elapsed,
        )
        return best


def _threshold(
    settings: Settings, datasets: dict[str, data.Dataset], features: dict[str, Any], model: Any
) -> float:
    """The binary decision threshold, chosen on validation data when there is some."""
    spec = settings.spec
    chosen = datasets.get("validation", datasets["train"])
    threshold = choose_threshold(
        chosen.labels,
        scores(model, spec, features[chosen.channel]),
        settings.criterion,
        0.0 if spec.loss == "hinge_loss" else 0.5,
        f_beta=settings.f_beta,
        target_recall=settings.target_recall,
        target_precision=settings.target_precision,
    )
    logger.info(
        "Decision threshold %s (chosen for %s on %s)",
        _fmt(threshold),
        settings.criterion,
        chosen.channel,
    )
    return threshold


def _score_kind(spec: ModelSpec) -> str:
    if spec.loss == "hinge_loss":
        return "margin"
    return "probability" if spec.classifier else "value"


def save_model(trained: Trained, settings: Settings, columns: int, model_dir: Path) -> None:
    import joblib

    joblib.dump(trained.pipeline, model_dir / MODEL_FILE)
    spec = settings.spec
    config = {
        "predictor_type": spec.predictor_type,
        "feature_dim": columns,
        "num_classes": len(spec.classes) if spec.classes else None,
        "threshold": trained.threshold,
        "score": _score_kind(spec),
        "loss": spec.loss,
    }
    (model_dir / CONFIG_FILE).write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    install_inference_code(model_dir, "linear-learner", "linear_learner_handlers")


def train(
    opt_ml: Path,
    hyperparameters: dict[str, str],
    channels: dict[str, Path],
    content_types: dict[str, str],
) -> None:
    """Fit the linear model and write it, servable, to ``<opt_ml>/model``."""
    tree = OptMl(opt_ml)
    settings = parse_hyperparameters(hyperparameters)
    spec = settings.spec
    model = "softmax/linear model trained with " + spec.optimizer
    if spec.backend == "sgd":
        model = "linear model trained with per-record SGD"
    logger.info(
        "Training a %s with %s loss: %s, %d epochs, mini_batch_size %d",
        spec.predictor_type,
        spec.loss,
        model,
        settings.epochs,
        spec.mini_batch_size,
    )
    datasets = load_datasets(channels, content_types, settings)
    trained = fit(settings, datasets, tree.current_host())
    save_model(trained, settings, datasets["train"].columns, tree.model_dir)
    logger.info("Saved the model to %s", tree.model_dir)


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    return run_training("python -m sabio.algorithms.linear_learner", train, argv)


if __name__ == "__main__":
    sys.exit(main())
