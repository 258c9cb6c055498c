"""Fixtures of the batch transform tests: a client, the two iris models, iris under a prefix."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from support.deploy import create_model, store_archive, unique
from support.models import model_archive
from support.server import SabioServer
from support.training import put_bytes
from transform.jobs import INFERENCE, IRIS, csv_text


@pytest.fixture(scope="module")
def sm(server: SabioServer) -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", server.url)
        yield boto3.client("sagemaker")


@pytest.fixture(scope="module")
def models(
    server: SabioServer, sm: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Two models: scikit-learn's framework defaults, and one with the handlers above."""
    folder = tmp_path_factory.mktemp("transform-models")
    names = {}
    for kind, files in (("default", {}), ("custom", {"code/inference.py": INFERENCE})):
        uri = store_archive(server, model_archive(folder / f"{kind}.tar.gz", files), f"{kind}.tgz")
        assert uri.endswith(f"{kind}.tgz")
        names[kind] = create_model(sm, uri, f"iris-{kind}")
    return names


@pytest.fixture(scope="module")
def iris_prefix(server: SabioServer) -> str:
    """Iris in three CSV files under a prefix, one in a sub-folder."""
    prefix = f"s3://data/{unique('iris')}"
    put_bytes(server, f"{prefix}/part-1.csv", csv_text(IRIS.data[:50]).encode())
    put_bytes(server, f"{prefix}/sub/part-2.csv", csv_text(IRIS.data[50:100]).encode())
    put_bytes(server, f"{prefix}/part-3.csv", csv_text(IRIS.data[100:]).encode())
    return prefix
