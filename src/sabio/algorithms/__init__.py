"""SageMaker's built-in algorithms, run as Python modules inside an image's environment.

A training job whose image names a built-in algorithm (``xgboost``, ``sagemaker-xgboost``,
``linear-learner``) runs ``python -m sabio.algorithms.<module> train`` in an ``/opt/ml`` tree
(``SABIO_OPT_ML``). Each module exposes the same small API:

- ``METRIC_DEFINITIONS``: the ``[{Name, Regex}]`` its log lines satisfy, registered for the job
  without the user giving any;
- ``REQUIRED_CHANNELS``: channels a job cannot train without;
- ``train(opt_ml, hyperparameters, channels, content_types)``, raising ``ClientError`` for
  anything the user must fix;
- ``main()``, the command line.

The model it writes carries ``code/inference.py``, so the Sabio model worker serves it the way
the algorithm's SageMaker image would, without knowing about algorithms.

Importing an algorithm module is cheap: xgboost and scikit-learn load only when it trains.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, TypedDict, cast


class MetricDefinition(TypedDict):
    """One ``AlgorithmSpecification.MetricDefinitions`` entry."""

    Name: str
    Regex: str


class Algorithm(Protocol):
    """What every module in ``ALGORITHMS`` provides."""

    METRIC_DEFINITIONS: list[MetricDefinition]
    REQUIRED_CHANNELS: tuple[str, ...]

    def train(
        self,
        opt_ml: Path,
        hyperparameters: dict[str, str],
        channels: dict[str, Path],
        content_types: dict[str, str],
    ) -> None: ...

    def main(self, argv: list[str] | None = None) -> int: ...


ALGORITHMS: dict[str, str] = {
    "xgboost": "sabio.algorithms.xgboost",
    "linear-learner": "sabio.algorithms.linear_learner",
}
"""Algorithm name (as ``ImageSpec.algorithm`` spells it) to the module that implements it."""


def load(name: str) -> Algorithm:
    """The module of a built-in algorithm; a KeyError names the known ones."""
    try:
        module_name = ALGORITHMS[name]
    except KeyError:
        raise KeyError(
            f"Unknown built-in algorithm {name!r}: known are {', '.join(sorted(ALGORITHMS))}"
        ) from None
    return cast(Algorithm, importlib.import_module(module_name))
