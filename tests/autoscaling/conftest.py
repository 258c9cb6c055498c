"""Fixtures for endpoint autoscaling: a live server whose autoscaler runs several times a second
on one-second datapoints, an endpoint to scale, and boto3 clients pointed at the server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from autoscaling.scaling_helpers import ECHO, FAST, Clients
from support.deploy import store_code_model
from support.server import SabioServer, running_server


@pytest.fixture(scope="package")
def scaling_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SabioServer]:
    with running_server(tmp_path_factory.mktemp("autoscaling-home"), dict(FAST)) as running:
        yield running


@pytest.fixture(scope="package")
def clients(scaling_server: SabioServer) -> Iterator[Clients]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", scaling_server.url)
        yield Clients(scaling_server)


@pytest.fixture(scope="package")
def echo_model_uri(scaling_server: SabioServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    return store_code_model(scaling_server, tmp_path_factory.mktemp("echo"), ECHO, "echo")
