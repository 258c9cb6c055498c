"""The `/opt/ml` contract of a SageMaker training container, from the algorithm's side.

The job controller lays out the tree (config files, channel directories) and points
``SABIO_OPT_ML`` at it; an algorithm reads its inputs here, writes the model under ``model/``,
and on failure writes the reason to ``output/failure`` (its first 1024 characters become the
job's ``FailureReason``) and exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_ROOT = "SABIO_OPT_ML"
DEFAULT_ROOT = Path("/opt/ml")
DEFAULT_HOST = "algo-1"

EXIT_CLIENT_ERROR = 2
"""The job's inputs are wrong (hyperparameters, channels, data): retrying will not help."""
EXIT_ALGORITHM_ERROR = 1

logger = logging.getLogger("sabio.algorithms")

TrainFunction = Callable[[Path, dict[str, str], dict[str, Path], dict[str, str]], None]


class ClientError(Exception):
    """The job failed because of what it was given; the message says what to change."""


@dataclass(frozen=True)
class OptMl:
    """Paths and config files of one `/opt/ml` tree."""

    root: Path

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> OptMl:
        value = environ.get(ENV_ROOT, "").strip()
        return cls(Path(value) if value else DEFAULT_ROOT)

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def data_dir(self) -> Path:
        return self.root / "input" / "data"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_data_dir(self) -> Path:
        return self.root / "output" / "data"

    @property
    def failure_file(self) -> Path:
        return self.root / "output" / "failure"

    def _read_json(self, name: str) -> Any:
        path = self.config_dir / name
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ClientError(f"Cannot read {path}: {exc}") from exc

    def hyperparameters(self) -> dict[str, str]:
        """``hyperparameters.json`` with every value as the string the API carried."""
        raw = self._read_json("hyperparameters.json")
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise ClientError("hyperparameters.json must hold a JSON object")
        return {
            str(name): value if isinstance(value, str) else json.dumps(value)
            for name, value in raw.items()
        }

    def input_data_config(self) -> dict[str, dict[str, Any]]:
        raw = self._read_json("inputdataconfig.json")
        if raw is None:
            return {}
        if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
            raise ClientError("inputdataconfig.json must map channel names to objects")
        return {str(name): dict(value) for name, value in raw.items()}

    def channels(self) -> dict[str, Path]:
        """Every channel that has a data directory, by name."""
        if not self.data_dir.is_dir():
            return {}
        return {
            path.name: path
            for path in sorted(self.data_dir.iterdir())
            if path.is_dir() and not path.name.startswith(".")
        }

    def content_types(self) -> dict[str, str]:
        """The ``ContentType`` each channel declared; a channel without one is left out."""
        return {
            name: str(config["ContentType"])
            for name, config in self.input_data_config().items()
            if config.get("ContentType")
        }

    def current_host(self) -> str:
        raw = self._read_json("resourceconfig.json")
        if isinstance(raw, dict) and isinstance(raw.get("current_host"), str):
            return str(raw["current_host"])
        return DEFAULT_HOST

    def write_failure(self, reason: str) -> None:
        try:
            self.failure_file.parent.mkdir(parents=True, exist_ok=True)
            self.failure_file.write_text(reason.rstrip() + "\n", encoding="utf-8")
        except OSError:
            logger.exception("Could not write the failure file %s", self.failure_file)


def require_channel(channels: Mapping[str, Path], name: str) -> Path:
    """The directory of a channel the algorithm cannot train without."""
    path = channels.get(name)
    if path is None:
        raise ClientError(f'Missing required channel "{name}"')
    return path


def configure_logging() -> None:
    """SageMaker-like log lines on stdout, where the controller collects them as they come."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter("[%(asctime)s %(levelname)s] %(message)s", "%Y-%m-%d %H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # Library warnings (xgboost's are Python warnings) belong in the job log, not on stderr.
    logging.captureWarnings(True)


def run_training(
    prog: str,
    train: TrainFunction,
    argv: list[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run ``train`` on the tree ``SABIO_OPT_ML`` names: the process exit code.

    Failures become ``output/failure``: a ``ClientError`` is the job's fault (exit 2), anything
    else the algorithm's (exit 1, with the traceback in the log).
    """
    parser = argparse.ArgumentParser(prog=prog, description="Train a SageMaker built-in model.")
    parser.add_argument("mode", nargs="?", default="train", choices=["train"])
    parser.parse_args(argv)
    env = os.environ if environ is None else environ
    tree = OptMl.from_environ(env)
    tree.failure_file.unlink(missing_ok=True)
    try:
        channels = tree.channels()
        for name in tree.input_data_config():
            if name not in channels:
                raise ClientError(f'Channel "{name}" has no data directory under {tree.data_dir}')
        tree.model_dir.mkdir(parents=True, exist_ok=True)
        train(tree.root, tree.hyperparameters(), channels, tree.content_types())
    except ClientError as exc:
        message = f"ClientError: {exc}"
        logger.error("%s", message)
        tree.write_failure(message)
        return EXIT_CLIENT_ERROR
    except Exception as exc:
        logger.error("Training failed:\n%s", traceback.format_exc())
        tree.write_failure(f"AlgorithmError: {type(exc).__name__}: {exc}")
        return EXIT_ALGORITHM_ERROR
    logger.info("Training complete; the model is in %s", tree.model_dir)
    return 0
