"""A Sabio server whose artifacts live in an S3-compatible store (a real moto server process):
the platform reads and writes there, the gateway points S3 clients at it, and the store's
secret never shows."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sabio.artifacts.registry import from_settings
from sabio.artifacts.s3 import S3ArtifactStore
from sabio.artifacts.uri import parse
from sabio.config import Settings
from support.server import SabioServer

SECRET = "s3cr3t-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def s3_env(s3_server_url: str) -> dict[str, str]:
    return {
        "SABIO_S3_ENDPOINT_URL": s3_server_url,
        "SABIO_S3_ACCESS_KEY_ID": "sabio-key",
        "SABIO_S3_SECRET_ACCESS_KEY": SECRET,
        "SABIO_S3_ADDRESSING_STYLE": "path",
    }


@pytest.fixture(scope="module")
def s3_mode_server(
    tmp_path_factory: pytest.TempPathFactory, s3_env: dict[str, str]
) -> Iterator[SabioServer]:
    running = SabioServer(
        tmp_path_factory.mktemp("s3-mode"), env={**s3_env, "SABIO_LOG_LEVEL": "debug"}
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def moto(s3_server_url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=s3_server_url,
        aws_access_key_id="sabio-key",
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )


def test_settings_choose_the_s3_backend_and_hide_the_secret(
    s3_env: dict[str, str], tmp_path: Path
) -> None:
    settings = Settings(
        home=tmp_path,
        s3_endpoint_url=s3_env["SABIO_S3_ENDPOINT_URL"],
        s3_secret_access_key=SECRET,  # type: ignore[arg-type]
    )
    store, uri = from_settings(settings).resolve("s3://bucket/key")
    assert isinstance(store, S3ArtifactStore)
    assert uri == parse("s3://bucket/key")
    for text in (repr(settings), str(settings), repr(store), str(settings.model_dump())):
        assert SECRET not in text
    assert not (tmp_path / "artifacts").exists()


def test_the_platform_writes_to_the_s3_store(
    s3_mode_server: SabioServer, s3_env: dict[str, str], moto: Any, tmp_path: Path
) -> None:
    bucket = f"team-{uuid.uuid4().hex[:8]}"
    moto.create_bucket(Bucket=bucket)
    source = tmp_path / "model.tar.gz"
    source.write_bytes(os.urandom(100_000))
    env = {**os.environ, **s3_env, "SABIO_HOME": str(s3_mode_server.home)}
    subprocess.run(
        [sys.executable, "-m", "sabio", "s3", "cp", str(source), f"s3://{bucket}/models/"],
        check=True,
        capture_output=True,
        env=env,
    )
    body = moto.get_object(Bucket=bucket, Key="models/model.tar.gz")["Body"].read()
    assert body == source.read_bytes()
    assert not (s3_mode_server.home / "artifacts" / bucket).exists()


def test_the_gateway_sends_s3_clients_to_the_store(
    s3_mode_server: SabioServer, s3_server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_mode_server.url)
    with pytest.raises(ClientError) as error:
        boto3.client("s3").list_buckets()
    response = error.value.response
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (
        "NotImplemented",
        501,
    )
    assert s3_server_url in response["Error"]["Message"]
    assert SECRET not in s3_mode_server.logs()


def test_writes_stream_as_multipart_uploads(s3_env: dict[str, str], moto: Any) -> None:
    bucket = f"team-{uuid.uuid4().hex[:8]}"
    moto.create_bucket(Bucket=bucket)
    settings = Settings(
        s3_endpoint_url=s3_env["SABIO_S3_ENDPOINT_URL"],
        s3_access_key_id="sabio-key",  # type: ignore[arg-type]
        s3_secret_access_key=SECRET,  # type: ignore[arg-type]
    )
    store, uri = from_settings(settings).resolve(f"s3://{bucket}/big.bin")
    data = os.urandom(20 * 1024 * 1024)
    info = store.write(uri, io.BytesIO(data))
    assert info.etag.endswith("-3")  # three 8 MiB parts: never held whole in memory
    assert moto.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == data
