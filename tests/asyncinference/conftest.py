"""Fixtures for asynchronous inference: a live server whose leases run out quickly and boto3
clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from asyncinference.async_helpers import FAST
from support.server import SabioServer, running_server


@pytest.fixture(scope="module")
def async_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SabioServer]:
    with running_server(tmp_path_factory.mktemp("async-home"), dict(FAST)) as running:
        yield running


@pytest.fixture
def clients(async_server: SabioServer, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, Any]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", async_server.url)
    return boto3.client("sagemaker"), boto3.client("sagemaker-runtime"), boto3.client("s3")
