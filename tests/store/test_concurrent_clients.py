"""Several clients at once against a live server, on SQLite and on PostgreSQL: nothing is lost
or duplicated; and the `sabio db` commands."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from alembic.script import ScriptDirectory
from botocore.exceptions import ClientError

from sabio.store import database
from support.deploy import ROLE, SKLEARN_IMAGE
from support.postgres import fresh_database
from support.server import SabioServer


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SabioServer]:
    home = tmp_path / "home"
    home.mkdir()
    if request.param == "sqlite":
        server = SabioServer(home)
        server.start()
        yield server
        server.stop()
        return
    with fresh_database(request.getfixturevalue("postgres_url")) as url:
        server = SabioServer(home, env={"SABIO_DATABASE_URL": url})
        server.start()
        yield server
        server.stop()


def test_concurrent_creates_lose_and_duplicate_nothing(live: SabioServer):
    client = boto3.client("sagemaker", endpoint_url=live.url)

    def create(name: str) -> str:
        try:
            client.create_model(
                ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": SKLEARN_IMAGE}
            )
            return "created"
        except ClientError as error:
            assert error.response["Error"]["Code"] == "ValidationException"
            assert "Cannot create already existing model" in error.response["Error"]["Message"]
            return "duplicate"

    names = [f"model-{i}" for i in range(60)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(create, names))
        racing = list(pool.map(create, ["contended"] * 16))
    assert results == ["created"] * 60
    assert sorted(racing) == ["created"] + ["duplicate"] * 15
    paginator = client.get_paginator("list_models")
    listed = [m["ModelName"] for page in paginator.paginate() for m in page["Models"]]
    assert sorted(listed) == sorted([*names, "contended"])


def test_db_commands(tmp_path: Path):
    env = {**os.environ, "SABIO_HOME": str(tmp_path)}

    def sabio(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sabio", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    assert "schema revision none" in sabio("db", "current").stdout
    upgraded = sabio("db", "upgrade")
    assert upgraded.returncode == 0
    head = ScriptDirectory(str(database.MIGRATIONS)).get_current_head()
    assert f"schema revision {head}" in upgraded.stdout
    assert f"schema revision {head}" in sabio("db", "current").stdout
    env["SABIO_DATABASE_URL"] = "postgresql+psycopg://sabio:hunter2@127.0.0.1:1/nowhere"
    failed = sabio("db", "upgrade")
    assert failed.returncode == 2
    assert "Cannot use the metadata database" in failed.stderr
    assert "hunter2" not in failed.stderr
    assert "Traceback" not in failed.stderr
