"""The same platform on PostgreSQL: a server configured with SABIO_DATABASE_URL deploys, serves,
and after a restart serves again from what PostgreSQL holds."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from support.deploy import deploy, invoke_when_ready, store_archive
from support.models import INFERENCE_PY, model_archive
from support.postgres import fresh_database
from support.server import SabioServer

pytestmark = pytest.mark.postgres


def test_endpoint_on_postgresql_survives_a_restart(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with fresh_database(postgres_url) as url:
        env = {"SABIO_DATABASE_URL": url}
        first = SabioServer(tmp_path / "home", env=env)
        (tmp_path / "home").mkdir()
        first.start()
        monkeypatch.setenv("AWS_ENDPOINT_URL", first.url)
        sm, runtime = boto3.client("sagemaker"), boto3.client("sagemaker-runtime")
        archive = model_archive(tmp_path / "m.tar.gz", {"code/inference.py": INFERENCE_PY})
        name = deploy(sm, store_archive(first, archive, "pg/model.tar.gz"))
        assert not (tmp_path / "home" / "sabio.db").exists()
        assert first.stop() == 0

        second = SabioServer(tmp_path / "home", env=env)
        second.port, second.url = first.port, first.url
        second.start()
        try:
            assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
            sm.get_waiter("endpoint_in_service").wait(EndpointName=name)
            body = invoke_when_ready(runtime, name, b"[[5.1, 3.5, 1.4, 0.2]]")
            assert json.loads(body) == {"predictions": [0]}
            sm.delete_endpoint(EndpointName=name)
        finally:
            second.stop()
