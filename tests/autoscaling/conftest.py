"""Fixtures for endpoint autoscaling: a live server whose autoscaler runs several times a second
on one-second datapoints, an endpoint to scale, and boto3 clients pointed at the server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaling.scaling_helpers import ECHO, FAST, Clients
from support.deploy import store_archive, unique
from support.models import model_archive
from support.server import SabioServer


@pytest.fixture(scope="package")
def scaling_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SabioServer]:
    running = SabioServer(tmp_path_factory.mktemp("autoscaling-home"), env=dict(FAST))
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="package")
def clients(scaling_server: SabioServer) -> Iterator[Clients]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", scaling_server.url)
        yield Clients(scaling_server)


@pytest.fixture(scope="package")
def echo_model_uri(scaling_server: SabioServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    archive = model_archive(
        Path(tmp_path_factory.mktemp("echo")) / "model.tar.gz",
        {"code/inference.py": ECHO},
        with_model=False,
    )
    return store_archive(scaling_server, archive, f"{unique('echo')}/model.tar.gz")
