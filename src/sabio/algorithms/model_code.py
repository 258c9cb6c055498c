"""The inference code a built-in algorithm ships inside its model.

Training copies the ``serving`` package into ``<model>/code/`` and writes a two-line
``code/inference.py`` that re-exports the algorithm's handlers: the Sabio model worker imports
it as it would a user's entry point. The copy keeps a model servable by the code it was trained
with, whatever Sabio version serves it later.
"""

from __future__ import annotations

import shutil
from pathlib import Path

SERVING_PACKAGE = "sabio_algorithm_serving"
"""The name the ``serving`` package has inside a model's ``code/`` directory."""

_SOURCE = Path(__file__).with_name("serving")
_ENTRY_POINT = '''\
"""Inference handlers of a model trained by Sabio's built-in {algorithm} algorithm.

The model worker imports this file as SageMaker's `code/inference.py`; the handlers live in
the `{package}` package next to it.
"""

from {package}.{module} import input_fn, model_fn, output_fn, predict_fn

__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]
'''


def install_inference_code(model_dir: Path, algorithm: str, handlers: str) -> None:
    """Write ``code/`` into ``model_dir``: the entry point and the handlers package."""
    code = model_dir / "code"
    if code.exists():
        shutil.rmtree(code)
    shutil.copytree(
        _SOURCE, code / SERVING_PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]")
    )
    (code / "inference.py").write_text(
        _ENTRY_POINT.format(algorithm=algorithm, package=SERVING_PACKAGE, module=handlers),
        encoding="utf-8",
    )
