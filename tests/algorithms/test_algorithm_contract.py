"""What every built-in algorithm shares: the registry, reading `/opt/ml`, reading channels, and
failing the SageMaker way (a reason in `output/failure`, a non-zero exit).

Most failures run the entry point in this process, which is quick; one runs the real command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import regex

from algorithms.algorithm_harness import Channel, write_tree
from sabio.algorithms import ALGORITHMS, data, linear_learner, load, xgboost
from sabio.algorithms.hyperparameters import Hyperparameters
from sabio.algorithms.opt_ml import ClientError, TrainFunction, run_training

ROWS = "1,0.5,2.0\n0,1.5,-1.0\n1,0.25,3.5\n0,2.0,0.0\n"


def run(
    train: TrainFunction,
    tmp_path: Path,
    hyperparameters: Mapping[str, str],
    channels: Mapping[str, Channel],
) -> tuple[int, str]:
    """Run an algorithm's entry point on a fresh tree: (exit code, failure reason)."""
    root = write_tree(tmp_path / "opt_ml", hyperparameters, channels)
    code = run_training("test", train, ["train"], {"SABIO_OPT_ML": str(root)})
    failure = root / "output" / "failure"
    return code, failure.read_text().strip() if failure.exists() else ""


def csv_channel(text: str = ROWS, name: str = "data.csv") -> Channel:
    return Channel({name: text}, "text/csv")


def test_registry_exposes_the_algorithm_api() -> None:
    assert ALGORITHMS == {
        "xgboost": "sabio.algorithms.xgboost",
        "linear-learner": "sabio.algorithms.linear_learner",
    }
    for name in ALGORITHMS:
        module = load(name)
        assert module.REQUIRED_CHANNELS == ("train",)
        assert callable(module.train)
        assert callable(module.main)
        for definition in module.METRIC_DEFINITIONS:
            assert set(definition) == {"Name", "Regex"}
            assert regex.compile(definition["Regex"]).groups == 1
    with pytest.raises(KeyError, match="known are linear-learner, xgboost"):
        load("kmeans")


def test_algorithm_modules_import_without_their_frameworks() -> None:
    """The platform reads METRIC_DEFINITIONS where xgboost may not be installed."""
    probe = (
        "import sys, sabio.algorithms.xgboost, sabio.algorithms.linear_learner;"
        "print(sorted(m for m in ('xgboost', 'sklearn', 'scipy') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("hyperparameters", "reason"),
    [
        ({}, "ClientError: Hyperparameter num_round is required"),
        ({"num_round": "ten"}, "ClientError: Hyperparameter num_round: 'ten' is not an integer"),
        ({"num_round": "0"}, "ClientError: Hyperparameter num_round: 0 is less than 1"),
        (
            {"num_round": "5", "objective": "multi:softprob"},
            "ClientError: Hyperparameter num_class is required for objective multi:softprob",
        ),
        (
            {"num_round": "5", "eta": "1.5"},
            "ClientError: Hyperparameter eta: 1.5 is greater than 1",
        ),
        (
            {"num_round": "5", "eta": "fast"},
            "ClientError: Hyperparameter eta: 'fast' is not a number",
        ),
        (
            {"num_round": "5", "objective": "rank:pairwise"},
            "ClientError: Hyperparameter objective: 'rank:pairwise' is not one of",
        ),
        (
            {"num_round": "5", "eval_metric": "auc,bogus"},
            "ClientError: Hyperparameter eval_metric: 'bogus' is not one of",
        ),
        (
            {"num_round": "5", "early_stopping_rounds": "3"},
            "ClientError: Hyperparameter early_stopping_rounds needs a validation channel",
        ),
    ],
)
def test_xgboost_rejects_bad_hyperparameters(
    tmp_path: Path, hyperparameters: dict[str, str], reason: str
) -> None:
    code, failure = run(xgboost.train, tmp_path, hyperparameters, {"train": csv_channel()})
    assert code == 2
    assert failure.startswith(reason), failure


def test_xgboost_accepts_json_encoded_values(tmp_path: Path) -> None:
    hyperparameters = {
        "num_round": '"3"',
        "objective": '"binary:logistic"',
        "sagemaker_region": "x",
    }
    code, failure = run(xgboost.train, tmp_path, hyperparameters, {"train": csv_channel()})
    assert (code, failure) == (0, "")
    assert (tmp_path / "opt_ml" / "model" / "xgboost-model").is_file()


def test_missing_train_channel(tmp_path: Path) -> None:
    only_validation = {"validation": csv_channel()}
    code, failure = run(xgboost.train, tmp_path, {"num_round": "3"}, only_validation)
    assert (code, failure) == (2, 'ClientError: Missing required channel "train"')
    code, failure = run(
        linear_learner.train,
        tmp_path / "ll",
        {"predictor_type": "regressor"},
        only_validation,
    )
    assert (code, failure) == (2, 'ClientError: Missing required channel "train"')


def test_malformed_csv_names_the_file_and_line(tmp_path: Path) -> None:
    broken = ROWS + "1,0.5,abc\n"
    code, failure = run(
        xgboost.train, tmp_path, {"num_round": "3"}, {"train": csv_channel(broken, "sub/x.csv")}
    )
    assert code == 2
    assert failure == (
        "ClientError: channel \"train\" file sub/x.csv line 5, column 3: 'abc' is not a number "
        "(the CSV must hold only numbers, without a header row)"
    )


def test_ragged_csv(tmp_path: Path) -> None:
    code, failure = run(
        xgboost.train, tmp_path, {"num_round": "3"}, {"train": csv_channel(ROWS + "1,2\n")}
    )
    assert code == 2
    assert "data.csv line 5 has 2 columns, but line 1 has 3" in failure


def test_xgboost_labels_must_fit_the_objective(tmp_path: Path) -> None:
    code, failure = run(
        xgboost.train,
        tmp_path,
        {"num_round": "3", "objective": "multi:softmax", "num_class": "2"},
        {"train": csv_channel(ROWS + "2,1,1\n")},
    )
    assert code == 2
    assert "must be integers in [0, 2)" in failure


def test_xgboost_refuses_recordio(tmp_path: Path) -> None:
    channel = Channel({"data.rec": b"\x00\x01"}, "application/x-recordio-protobuf")
    code, failure = run(xgboost.train, tmp_path, {"num_round": "3"}, {"train": channel})
    assert code == 2
    assert "application/x-recordio-protobuf is not supported" in failure


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("pandas") is not None, reason="pandas is installed"
)
def test_parquet_without_pandas_says_so(tmp_path: Path) -> None:
    channel = Channel({"data.parquet": b"PAR1"}, "application/x-parquet")
    code, failure = run(xgboost.train, tmp_path, {"num_round": "3"}, {"train": channel})
    assert code == 2
    assert "needs pandas and pyarrow" in failure


@pytest.mark.parametrize(
    ("hyperparameters", "channel", "reason"),
    [
        ({}, csv_channel(), "Hyperparameter predictor_type is required"),
        (
            {"predictor_type": "classifier"},
            csv_channel(),
            "Hyperparameter predictor_type: 'classifier' is not one of binary_classifier",
        ),
        (
            {"predictor_type": "multiclass_classifier"},
            csv_channel(),
            "Hyperparameter num_classes is required when predictor_type is multiclass_classifier",
        ),
        (
            {"predictor_type": "binary_classifier", "loss": "squared_loss"},
            csv_channel(),
            "Hyperparameter loss: 'squared_loss' does not fit predictor_type binary_classifier",
        ),
        (
            {"predictor_type": "binary_classifier"},
            Channel({"data.csv": ROWS}),
            'Channel "train" has no ContentType, which for Linear Learner means '
            "application/x-recordio-protobuf: Sabio's Linear Learner reads only text/csv",
        ),
        (
            {"predictor_type": "binary_classifier", "feature_dim": "5"},
            csv_channel(),
            'Channel "train" has 2 features, but feature_dim is 5',
        ),
        (
            {"predictor_type": "binary_classifier"},
            csv_channel(ROWS + "2,1,1\n"),
            'Channel "train": binary_classifier labels must be 0 or 1',
        ),
        (
            {"predictor_type": "regressor"},
            csv_channel("y,a,b\n" + ROWS),
            "line 1, column 1: 'y' is not a number (the CSV must hold only numbers",
        ),
        (
            {"predictor_type": "regressor"},
            csv_channel(ROWS + "1,,2\n"),
            'channel "train" file data.csv line 5, column 2 is empty',
        ),
    ],
)
def test_linear_learner_rejects_bad_jobs(
    tmp_path: Path, hyperparameters: dict[str, str], channel: Channel, reason: str
) -> None:
    code, failure = run(linear_learner.train, tmp_path, hyperparameters, {"train": channel})
    assert code == 2
    assert failure.startswith("ClientError: ")
    assert reason in failure, failure


def test_declared_channel_without_data(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "opt_ml", {"num_round": "3"}, {"train": csv_channel()})
    config = root / "input" / "config" / "inputdataconfig.json"
    config.write_text(json.dumps({"train": {}, "validation": {"ContentType": "text/csv"}}))
    code = run_training("test", xgboost.train, ["train"], {"SABIO_OPT_ML": str(root)})
    assert code == 2
    assert 'Channel "validation" has no data directory' in (root / "output/failure").read_text()


def test_an_algorithm_bug_is_an_algorithm_error(tmp_path: Path) -> None:
    def broken(
        opt_ml: Path,
        hyperparameters: dict[str, str],
        channels: dict[str, Path],
        content_types: dict[str, str],
    ) -> None:
        raise RuntimeError("boom")

    code, failure = run(broken, tmp_path, {}, {"train": csv_channel()})
    assert (code, failure) == (1, "AlgorithmError: RuntimeError: boom")


def test_the_command_fails_with_exit_code_2(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "opt_ml", {"objective": "binary:logistic"}, {"train": csv_channel()}
    )
    (root / "output" / "failure").write_text("stale\n")
    done = subprocess.run(
        [sys.executable, "-m", "sabio.algorithms.xgboost", "train"],
        env={**os.environ, "SABIO_OPT_ML": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    reason = "ClientError: Hyperparameter num_round is required"
    assert (root / "output" / "failure").read_text() == reason + "\n"
    assert reason in done.stdout


# The shared readers.


def test_channel_files_skip_hidden_and_underscore_names(tmp_path: Path) -> None:
    for name in ("b.csv", "a/c.csv", ".hidden", "_SUCCESS", ".cache/d.csv", "_tmp/e.csv"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("1,2\n")
    assert [p.relative_to(tmp_path).as_posix() for p in data.channel_files(tmp_path)] == [
        "a/c.csv",
        "b.csv",
    ]


def test_csv_missing_values_and_weights(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("1,2,,4\n0,0.5,3,\n\n")
    dataset = data.read_csv(tmp_path, "train", weights=True, allow_missing=True)
    np.testing.assert_array_equal(dataset.labels, [1, 0])
    np.testing.assert_array_equal(dataset.weights, [2, 0.5])
    np.testing.assert_array_equal(dataset.features, [[np.nan, 4], [3, np.nan]])


def test_libsvm_reader(tmp_path: Path) -> None:
    (tmp_path / "a.libsvm").write_text("1:2.5 qid:3 0:1 4:2 # comment\n\n0 2:-1\n")
    dataset = data.read_libsvm(tmp_path, "train")
    np.testing.assert_array_equal(dataset.labels, [1, 0])
    np.testing.assert_array_equal(dataset.weights, [2.5, 1])
    assert dataset.features.shape == (2, 5)
    np.testing.assert_array_equal(dataset.features.toarray()[0], [1, 0, 0, 0, 2])
    (tmp_path / "a.libsvm").write_text("1 0:1\n0 x:1\n")
    with pytest.raises(ClientError, match=r"a\.libsvm line 2: expected index:value pairs"):
        data.read_libsvm(tmp_path, "train")


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        (None, data.LIBSVM),
        ("csv", data.CSV),
        ("Text/CSV; label_size=1", data.CSV),
        ("text/x-libsvm", data.LIBSVM),
        ("parquet", data.PARQUET),
        ("application/json", "application/json"),
    ],
)
def test_content_types(given: str | None, canonical: str) -> None:
    assert data.content_type(given, data.LIBSVM) == canonical


def test_csv_label_size_must_be_one() -> None:
    with pytest.raises(ClientError, match="label_size must be 1"):
        data.content_type("text/csv;label_size=2", data.CSV)


def test_hyperparameters_report_unknown_names(caplog: pytest.LogCaptureFixture) -> None:
    hp = Hyperparameters({"epochs": "3", "epoch": "4", "sagemaker_program": "x", "wd": "auto"})
    assert hp.integer("epochs", 1) == 3
    assert hp.is_auto("wd")
    hp.warn_unread()
    assert [r.getMessage() for r in caplog.records] == ["Unknown hyperparameter epoch; ignoring it"]
