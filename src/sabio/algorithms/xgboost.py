"""SageMaker's built-in XGBoost algorithm (the ``sagemaker-xgboost:1.7-1`` contract).

``python -m sabio.algorithms.xgboost train`` trains on the ``train`` channel (and evaluates on
``validation`` when there is one), logs each round as XGBoost does
(``[3]\\ttrain-logloss:0.21\\tvalidation-logloss:0.25``), and writes ``model/xgboost-model``
(the Booster in XGBoost's UBJSON format) with ``model/code/``, the inference handlers the
Sabio model worker serves it with.

This module imports neither xgboost nor scikit-learn until it trains, so the platform can read
``METRIC_DEFINITIONS`` without them.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from sabio.algorithms import MetricDefinition, data
from sabio.algorithms.hyperparameters import Hyperparameters
from sabio.algorithms.model_code import install_inference_code
from sabio.algorithms.opt_ml import (
    ClientError,
    configure_logging,
    require_channel,
    run_training,
)

if TYPE_CHECKING:
    import xgboost

logger = logging.getLogger("sabio.algorithms.xgboost")

REQUIRED_CHANNELS: tuple[str, ...] = ("train",)
OPTIONAL_CHANNELS: tuple[str, ...] = ("validation",)
MODEL_FILE = "xgboost-model"
DEFAULT_CONTENT_TYPE = data.LIBSVM
"""SageMaker's XGBoost reads a channel without a ContentType as LIBSVM."""

# The metric lists SageMaker's XGBoost container registers for tuning.
MAXIMIZE_METRICS: tuple[str, ...] = (
    "accuracy",
    "auc",
    "aucpr",
    "balanced_accuracy",
    "f1",
    "f1_binary",
    "f1_macro",
    "map",
    "ndcg",
    "precision",
    "precision_macro",
    "precision_micro",
    "r2",
    "recall",
    "recall_macro",
    "recall_micro",
)
MINIMIZE_METRICS: tuple[str, ...] = (
    "aft-nloglik",
    "cox-nloglik",
    "error",
    "gamma-deviance",
    "gamma-nloglik",
    "interval-regression-accuracy",
    "logloss",
    "mae",
    "mape",
    "merror",
    "mlogloss",
    "mphe",
    "mse",
    "poisson-nloglik",
    "rmse",
    "rmsle",
    "tweedie-nloglik",
)
BUILTIN_METRICS = frozenset(
    {
        "rmse",
        "rmsle",
        "mae",
        "mape",
        "mphe",
        "logloss",
        "error",
        "merror",
        "mlogloss",
        "auc",
        "aucpr",
        "pre",
        "ndcg",
        "map",
        "poisson-nloglik",
        "gamma-nloglik",
        "cox-nloglik",
        "gamma-deviance",
        "tweedie-nloglik",
        "aft-nloglik",
        "interval-regression-accuracy",
    }
)
"""Metrics XGBoost computes itself; ``error@0.7``, ``ndcg@3-`` and the like count as theirs."""

_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def _metric_regex(data_name: str, metric: str) -> str:
    # "\t" as the log store keeps it; "#011" as CloudWatch shows the same byte.
    return rf"\[[0-9]+\].*(?:\t|#011){data_name}-{re.escape(metric)}:{_NUMBER}"


METRIC_DEFINITIONS: list[MetricDefinition] = [
    {"Name": f"{data_name}:{metric}", "Regex": _metric_regex(data_name, metric)}
    for data_name in ("validation", "train")
    for metric in sorted(MAXIMIZE_METRICS + MINIMIZE_METRICS)
]
"""``validation:<metric>`` and ``train:<metric>`` for every metric XGBoost can report."""

BINARY_OBJECTIVES = frozenset({"binary:logistic", "binary:logitraw", "binary:hinge"})
MULTI_OBJECTIVES = frozenset({"multi:softmax", "multi:softprob"})
OBJECTIVES = (
    BINARY_OBJECTIVES
    | MULTI_OBJECTIVES
    | {
        "reg:squarederror",
        "reg:squaredlogerror",
        "reg:logistic",
        "reg:pseudohubererror",
        "reg:absoluteerror",
        "reg:gamma",
        "reg:tweedie",
        "count:poisson",
        "survival:cox",
    }
)
_RENAMED_OBJECTIVES = {"reg:linear": "reg:squarederror"}
_OBSOLETE = (
    "lambda_bias",
    "sketch_eps",
    "predictor",
    "single_precision_histogram",
    "deterministic_histogram",
    "use_dask_gpu_training",
    "save_model_on_termination",
    "prob_buffer_row",
    "dsplit",
    "_kfold",
    "_num_cv_round",
)


@dataclass
class Settings:
    """The hyperparameters, split into XGBoost's parameters and what the trainer itself uses."""

    params: dict[str, Any]
    num_round: int
    objective: str
    num_class: int | None = None
    early_stopping_rounds: int | None = None
    csv_weights: bool = False
    builtin_metrics: list[str] = field(default_factory=list)
    custom_metrics: list[str] = field(default_factory=list)
    stopping_metric: str | None = None


def parse_hyperparameters(raw: dict[str, str]) -> Settings:
    """Validate the job's hyperparameters the way SageMaker's XGBoost does."""
    hp = Hyperparameters(raw)
    num_round = hp.integer("num_round", minimum=1)
    if num_round is None:
        raise ClientError("Hyperparameter num_round is required")
    objective = hp.choice(
        "objective", sorted(OBJECTIVES | _RENAMED_OBJECTIVES.keys()), "reg:squarederror"
    )
    if objective in _RENAMED_OBJECTIVES:
        logger.warning("objective %s is deprecated; using %s", objective, "reg:squarederror")
        objective = _RENAMED_OBJECTIVES[objective]
    params: dict[str, Any] = {"objective": objective}
    num_class = hp.integer("num_class", minimum=2)
    if objective in MULTI_OBJECTIVES:
        if num_class is None:
            raise ClientError(f"Hyperparameter num_class is required for objective {objective}")
        params["num_class"] = num_class
    elif num_class is not None:
        logger.warning("num_class has no effect with objective %s; ignoring it", objective)
        num_class = None
    _tree_params(hp, params)
    _other_params(hp, params)
    settings = Settings(
        params=params,
        num_round=num_round,
        objective=objective,
        num_class=num_class,
        early_stopping_rounds=hp.integer("early_stopping_rounds", minimum=1),
        csv_weights=hp.integer("csv_weights", 0, minimum=0, maximum=1) == 1,
    )
    _eval_metrics(hp, settings)
    hp.ignore(_OBSOLETE)
    hp.warn_unread()
    return settings


def _tree_params(hp: Hyperparameters, params: dict[str, Any]) -> None:
    numbers: dict[str, float | None] = {
        "eta": hp.number("eta", minimum=0, maximum=1),
        "gamma": hp.number("gamma", minimum=0),
        "min_child_weight": hp.number("min_child_weight", minimum=0),
        "max_delta_step": hp.number("max_delta_step", minimum=0),
        "subsample": hp.number("subsample", minimum=0, maximum=1, exclusive_minimum=True),
        "colsample_bytree": hp.number(
            "colsample_bytree", minimum=0, maximum=1, exclusive_minimum=True
        ),
        "colsample_bylevel": hp.number(
            "colsample_bylevel", minimum=0, maximum=1, exclusive_minimum=True
        ),
        "colsample_bynode": hp.number(
            "colsample_bynode", minimum=0, maximum=1, exclusive_minimum=True
        ),
        "lambda": hp.number("lambda", minimum=0),
        "alpha": hp.number("alpha", minimum=0),
        "scale_pos_weight": hp.number("scale_pos_weight", minimum=0, exclusive_minimum=True),
        "base_score": hp.number("base_score"),
        "tweedie_variance_power": hp.number("tweedie_variance_power", minimum=1, maximum=2),
        "rate_drop": hp.number("rate_drop", minimum=0, maximum=1),
        "skip_drop": hp.number("skip_drop", minimum=0, maximum=1),
    }
    integers: dict[str, int | None] = {
        "max_depth": hp.integer("max_depth", minimum=0),
        "max_leaves": hp.integer("max_leaves", minimum=0),
        "max_bin": hp.integer("max_bin", minimum=2),
        "num_parallel_tree": hp.integer("num_parallel_tree", minimum=1),
        "refresh_leaf": hp.integer("refresh_leaf", minimum=0, maximum=1),
        "one_drop": hp.integer("one_drop", minimum=0, maximum=1),
        "max_cat_to_onehot": hp.integer("max_cat_to_onehot", minimum=1),
    }
    choices: dict[str, str | None] = {
        "booster": hp.choice("booster", ["gbtree", "gblinear", "dart"]),
        "tree_method": hp.choice("tree_method", ["auto", "exact", "approx", "hist", "gpu_hist"]),
        "sampling_method": hp.choice("sampling_method", ["uniform", "gradient_based"]),
        "grow_policy": hp.choice("grow_policy", ["depthwise", "lossguide"]),
        "process_type": hp.choice("process_type", ["default", "update"]),
        "sample_type": hp.choice("sample_type", ["uniform", "weighted"]),
        "normalize_type": hp.choice("normalize_type", ["tree", "forest"]),
        "updater": hp.text("updater"),
        "interaction_constraints": hp.text("interaction_constraints"),
        "monotone_constraints": hp.text("monotone_constraints"),
    }
    if choices["tree_method"] == "gpu_hist":
        logger.warning("tree_method gpu_hist: Sabio trains on CPUs; using hist")
        choices["tree_method"] = "hist"
    for table in (numbers, integers, choices):
        params.update({name: value for name, value in table.items() if value is not None})


def _other_params(hp: Hyperparameters, params: dict[str, Any]) -> None:
    params["seed"] = hp.integer("seed", 0)
    params["verbosity"] = hp.integer("verbosity", 1, minimum=0, maximum=3)
    nthread = hp.integer("nthread", minimum=1)
    if nthread is not None:
        params["nthread"] = nthread


def _metric_base(name: str) -> str:
    return name.split("@", 1)[0].rstrip("-")


def _eval_metrics(hp: Hyperparameters, settings: Settings) -> None:
    raw = hp.text("eval_metric")
    names = [name.strip() for name in (raw or "").split(",") if name.strip()]
    for name in names:
        if name in CUSTOM_METRICS:
            settings.custom_metrics.append(name)
        elif _metric_base(name) in BUILTIN_METRICS:
            settings.builtin_metrics.append(name)
        else:
            known = ", ".join(sorted(BUILTIN_METRICS | CUSTOM_METRICS.keys()))
            raise ClientError(f"Hyperparameter eval_metric: {name!r} is not one of {known}")
    if settings.builtin_metrics:
        settings.params["eval_metric"] = settings.builtin_metrics
    elif settings.custom_metrics:
        settings.params["disable_default_eval_metric"] = 1
    if names:
        settings.stopping_metric = names[-1]


# Metrics XGBoost does not compute, from the predictions, as SageMaker's container adds them.

Scorer = Callable[[np.ndarray[Any, Any], np.ndarray[Any, Any], str], float]


def predicted_labels(predictions: np.ndarray[Any, Any], objective: str) -> np.ndarray[Any, Any]:
    """Class labels from what XGBoost predicts for ``objective`` (probabilities, margins, ...)."""
    if predictions.ndim == 2:
        return np.asarray(np.argmax(predictions, axis=1))
    if objective == "binary:logitraw":
        return (predictions > 0).astype(np.int64)
    if objective in MULTI_OBJECTIVES or objective == "binary:hinge":
        return predictions.astype(np.int64)
    return (predictions > 0.5).astype(np.int64)


def _classification(scorer: str, average: str | None = None) -> Scorer:
    """A label metric; ``average="auto"`` is binary for binary objectives, macro otherwise."""

    def score(
        labels: np.ndarray[Any, Any], predictions: np.ndarray[Any, Any], objective: str
    ) -> float:
        from sklearn import metrics

        predicted = predicted_labels(predictions, objective)
        options: dict[str, Any] = {}
        if average is not None:
            binary = objective in BINARY_OBJECTIVES or objective == "reg:logistic"
            chosen = ("binary" if binary else "macro") if average == "auto" else average
            options = {"average": chosen, "zero_division": 0}
        return float(getattr(metrics, scorer)(labels, predicted, **options))

    return score


def _regression(scorer: str) -> Scorer:
    def score(
        labels: np.ndarray[Any, Any], predictions: np.ndarray[Any, Any], objective: str
    ) -> float:
        from sklearn import metrics

        return float(getattr(metrics, scorer)(labels, predictions))

    return score


CUSTOM_METRICS: dict[str, Scorer] = {
    "accuracy": _classification("accuracy_score"),
    "balanced_accuracy": _classification("balanced_accuracy_score"),
    "f1": _classification("f1_score", "auto"),
    "f1_binary": _classification("f1_score", "binary"),
    "f1_macro": _classification("f1_score", "macro"),
    "precision": _classification("precision_score", "auto"),
    "precision_macro": _classification("precision_score", "macro"),
    "precision_micro": _classification("precision_score", "micro"),
    "recall": _classification("recall_score", "auto"),
    "recall_macro": _classification("recall_score", "macro"),
    "recall_micro": _classification("recall_score", "micro"),
    "mse": _regression("mean_squared_error"),
    "r2": _regression("r2_score"),
}


# Data


def _load_channel(
    channel: str, directory: Path, content_type: str, settings: Settings
) -> data.Dataset:
    if content_type == data.CSV:
        return data.read_csv(directory, channel, weights=settings.csv_weights, allow_missing=True)
    if content_type == data.LIBSVM:
        return data.read_libsvm(directory, channel)
    if content_type == data.PARQUET:
        return data.read_parquet(directory, channel)
    raise ClientError(
        f'Channel "{channel}": ContentType {content_type} is not supported; use text/csv, '
        "text/libsvm or application/x-parquet"
    )


def _check_labels(dataset: data.Dataset, settings: Settings) -> None:
    labels = dataset.labels
    objective = settings.objective
    where = f'The labels of channel "{dataset.channel}"'
    if objective in BINARY_OBJECTIVES or objective == "reg:logistic":
        if labels.min() < 0 or labels.max() > 1:
            raise ClientError(f"{where} must be in [0, 1] for objective {objective}")
    elif objective in MULTI_OBJECTIVES:
        num_class = settings.num_class or 0
        if (labels != np.floor(labels)).any() or labels.min() < 0 or labels.max() >= num_class:
            raise ClientError(
                f"{where} must be integers in [0, {num_class}) for objective {objective} "
                f"with num_class={num_class}"
            )
    elif objective in ("count:poisson", "reg:tweedie") and labels.min() < 0:
        raise ClientError(f"{where} must not be negative for objective {objective}")
    elif objective == "reg:gamma" and labels.min() <= 0:
        raise ClientError(f"{where} must be positive for objective {objective}")


def _widen(features: Any, width: int) -> Any:
    """A sparse channel with fewer feature columns than another, padded to ``width``."""
    if features.shape[1] == width:
        return features
    matrix = features.copy()
    matrix.resize((features.shape[0], width))
    return matrix


def load_datasets(
    channels: dict[str, Path], content_types: dict[str, str], settings: Settings
) -> list[data.Dataset]:
    """The train channel, then validation when given, with the same number of columns."""
    names = ["train", *(name for name in OPTIONAL_CHANNELS if name in channels)]
    require_channel(channels, "train")
    for name in sorted(set(channels) - set(names)):
        logger.warning('Channel "%s" is not one XGBoost reads; ignoring it', name)
    datasets = []
    for name in names:
        kind = data.content_type(content_types.get(name), DEFAULT_CONTENT_TYPE)
        dataset = _load_channel(name, channels[name], kind, settings)
        _check_labels(dataset, settings)
        datasets.append(dataset)
    widths = {dataset.columns for dataset in datasets}
    if len(widths) > 1:
        if all(not isinstance(dataset.features, np.ndarray) for dataset in datasets):
            width = max(widths)
            datasets = [
                data.Dataset(d.channel, _widen(d.features, width), d.labels, d.weights)
                for d in datasets
            ]
        else:
            described = ", ".join(f"{d.channel} has {d.columns}" for d in datasets)
            raise ClientError(
                f"The channels have different numbers of feature columns: {described}"
            )
    for dataset in datasets:
        logger.info(
            "%s matrix has %d rows and %d columns",
            dataset.channel.capitalize(),
            dataset.rows,
            dataset.columns,
        )
    return datasets


# Training


def _evaluation_logger() -> xgboost.callback.TrainingCallback:
    import xgboost

    class LogEvaluation(xgboost.callback.TrainingCallback):
        """One line per round, ``[round]\t<data>-<metric>:<value>...``, as XGBoost prints it."""

        def after_iteration(
            self,
            model: xgboost.Booster,
            epoch: int,
            evals_log: xgboost.callback.TrainingCallback.EvalsLog,
        ) -> bool:
            parts = [f"[{epoch}]"]
            for data_name, metrics in evals_log.items():
                for metric, values in metrics.items():
                    value = values[-1]
                    score = value[0] if isinstance(value, tuple) else value
                    parts.append(f"{data_name}-{metric}:{score:.5f}")
            if len(parts) > 1:
                logger.info("%s", "\t".join(parts))
            return False

    return LogEvaluation()


def _custom_metric(
    settings: Settings,
) -> Callable[[np.ndarray[Any, Any], xgboost.DMatrix], list[tuple[str, float]]]:
    names = list(settings.custom_metrics)
    objective = settings.objective

    def evaluate(
        predictions: np.ndarray[Any, Any], dmatrix: xgboost.DMatrix
    ) -> list[tuple[str, float]]:
        labels = dmatrix.get_label()
        return [(name, CUSTOM_METRICS[name](labels, predictions, objective)) for name in names]

    return evaluate


def _maximize(metric: str) -> bool:
    base = _metric_base(metric)
    return metric in MAXIMIZE_METRICS or base in MAXIMIZE_METRICS or base == "pre"


def train_booster(settings: Settings, datasets: Sequence[data.Dataset]) -> xgboost.Booster:
    """Boost ``num_round`` rounds (fewer with early stopping), logging every round."""
    import xgboost

    matrices = [
        (xgboost.DMatrix(d.features, label=d.labels, weight=d.weights, missing=np.nan), d.channel)
        for d in datasets
    ]
    callbacks: list[xgboost.callback.TrainingCallback] = [_evaluation_logger()]
    if settings.early_stopping_rounds is not None:
        if len(matrices) < 2:
            raise ClientError(
                "Hyperparameter early_stopping_rounds needs a validation channel to watch"
            )
        metric = settings.stopping_metric
        callbacks.append(
            xgboost.callback.EarlyStopping(
                rounds=settings.early_stopping_rounds,
                metric_name=metric,
                data_name="validation",
                # XGBoost's default metric for every objective is one to minimise.
                maximize=_maximize(metric) if metric else False,
                save_best=settings.params.get("booster", "gbtree") != "gblinear",
            )
        )
    try:
        booster = xgboost.train(
            settings.params,
            matrices[0][0],
            num_boost_round=settings.num_round,
            evals=matrices,
            callbacks=callbacks,
            verbose_eval=False,
            # XGBoost accepts a list of (name, value) pairs from one metric function.
            custom_metric=cast(Any, _custom_metric(settings)) if settings.custom_metrics else None,
        )
    except xgboost.core.XGBoostError as exc:
        message = str(exc).strip().splitlines()
        raise ClientError(
            f"XGBoost rejected the training job: {message[0] if message else exc}"
        ) from exc
    best = booster.attr("best_iteration")
    if best is not None:
        logger.info("Best round on validation: %s; the model keeps rounds 0 to %s", best, best)
    return booster


def save_model(booster: xgboost.Booster, model_dir: Path) -> Path:
    """``xgboost-model`` in UBJSON, XGBoost's native format, with the inference code."""
    path = model_dir / MODEL_FILE
    path.write_bytes(bytes(booster.save_raw(raw_format="ubj")))
    install_inference_code(model_dir, "xgboost", "xgboost_handlers")
    return path


def train(
    opt_ml: Path,
    hyperparameters: dict[str, str],
    channels: dict[str, Path],
    content_types: dict[str, str],
) -> None:
    """Train a Booster on the job's channels and write it, servable, to ``<opt_ml>/model``."""
    settings = parse_hyperparameters(hyperparameters)
    datasets = load_datasets(channels, content_types, settings)
    booster = train_booster(settings, datasets)
    path = save_model(booster, opt_ml / "model")
    logger.info("Saved the model to %s", path)


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    return run_training("python -m sabio.algorithms.xgboost", train, argv)


if __name__ == "__main__":
    sys.exit(main())
