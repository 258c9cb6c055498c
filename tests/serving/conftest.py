"""The long-lived model workers the worker tests share.

Workers take seconds to start (importing scikit-learn dominates), so all of them are launched
together by one package fixture and each test waits only for the one it uses.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from support.worker import (
    CONTEXT_HANDLERS,
    PLAIN_HANDLERS,
    SETOSA,
    TRANSFORM_HANDLERS,
    VIRGINICA,
    Worker,
    archive,
    dumped,
)


@pytest.fixture(scope="package")
def iris() -> LogisticRegression:
    data = load_iris()
    return LogisticRegression(max_iter=500).fit(data.data, data.target)


@pytest.fixture(scope="package")
def xgb_classifier() -> Any:
    xgboost = pytest.importorskip("xgboost")
    data = load_iris()
    return xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(data.data, data.target)


@pytest.fixture(scope="package")
def fleet(
    tmp_path_factory: pytest.TempPathFactory, iris: LogisticRegression, xgb_classifier: Any
) -> Iterator[dict[str, Worker]]:
    """Every long-lived worker of these modules, started at once so their startups overlap.

    ``{workdir}`` in an argument stands for the worker's own scratch directory.
    """
    model = dumped(iris)
    workers: dict[str, Worker] = {}

    def launch(name: str, files: Mapping[str, bytes | str], *args: str, **env: str) -> Worker:
        workdir = tmp_path_factory.mktemp(name)
        data = archive(workdir / "model.tar.gz", files)
        argv = ["--model-data", str(data), *(arg.format(workdir=workdir) for arg in args)]
        workers[name] = Worker(workdir, argv, env)
        return workers[name]

    try:
        launch("plain", {"model.joblib": model, "code/inference.py": PLAIN_HANDLERS}, "--port=0")
        launch(
            "context", {"model.joblib": model, "code/inference.py": CONTEXT_HANDLERS}, "--port=0"
        )
        launch(
            "transform",
            {
                "model.joblib": model,
                "code/inference.py": "raise RuntimeError('the default program must not load')",
                "src/serve.py": TRANSFORM_HANDLERS,
                "src/labels.py": "NAMES = ['setosa', 'versicolor', 'virginica']\n",
            },
            "--port=0",
            "--model-dir={workdir}/model",
            SAGEMAKER_PROGRAM="serve.py",
            SAGEMAKER_SUBMIT_DIRECTORY="/opt/ml/model/src",
        )
        launch(
            "defaults",
            {"model.joblib": model},
            "--port=0",
            SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="text/csv",
            SAGEMAKER_MAX_PAYLOAD_IN_MB="1",
        )
        launch("xgboost", {"iris-xgb.joblib": dumped(xgb_classifier)}, "--port=0")
        uds = launch("uds", {"model.joblib": model}, "--uds={workdir}/w.sock")
        uds.uds = uds.workdir / "w.sock"
        yield workers
    finally:
        for worker in workers.values():
            worker.stop()


@pytest.fixture
def plain(fleet: dict[str, Worker]) -> Worker:
    return fleet["plain"].wait_ready()


@pytest.fixture
def context_worker(fleet: dict[str, Worker]) -> Worker:
    return fleet["context"].wait_ready()


@pytest.fixture
def transform(fleet: dict[str, Worker]) -> Worker:
    return fleet["transform"].wait_ready()


@pytest.fixture
def defaults(fleet: dict[str, Worker]) -> Worker:
    return fleet["defaults"].wait_ready()


@pytest.fixture
def labels(iris: LogisticRegression) -> list[int]:
    predicted = iris.predict(np.array([SETOSA, VIRGINICA])).tolist()
    assert predicted == [0, 2]
    return list(predicted)
