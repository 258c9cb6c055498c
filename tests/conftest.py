"""Fixtures shared by the suite: a live Sabio server on a free loopback port, and boto3 clients
configured only through AWS_ENDPOINT_URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import boto3
import pytest

from support.postgres import PostgresUnavailable, postgres_server
from support.server import SabioServer, stop_leftovers


@pytest.fixture(scope="session", autouse=True)
def no_leftover_servers() -> Iterator[None]:
    yield
    stop_leftovers()


@pytest.fixture(scope="session", autouse=True)
def aws_environment() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        patch.delenv("AWS_PROFILE", raising=False)
        # One attempt: a 5xx that botocore would silently re-send shows up as a failure.
        patch.setenv("AWS_MAX_ATTEMPTS", "1")
        patch.setenv("AWS_RETRY_MODE", "standard")
        yield


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SabioServer]:
    """One server for the session; tests that restart a server make their own."""
    running = SabioServer(tmp_path_factory.mktemp("sabio-home"))
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def endpoint_url(server: SabioServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    return server.url


@pytest.fixture
def sm(endpoint_url: str) -> object:
    return boto3.client("sagemaker")


@pytest.fixture
def runtime(endpoint_url: str) -> object:
    return boto3.client("sagemaker-runtime")


@pytest.fixture(scope="session")
def model_tarballs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server for the session (a private cluster unless SABIO_TEST_DATABASE_URL)."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(postgres_server())
        except PostgresUnavailable as exc:
            pytest.skip(f"no PostgreSQL to test against: {exc}")
        yield url
