"""Abandoned multipart uploads are aborted by the server's sweep once they are older than
SABIO_S3_MULTIPART_MAX_AGE_SECONDS, freeing their parts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from support.server import SabioServer, running_server


@pytest.fixture(scope="module")
def sweeping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SabioServer]:
    env = {
        "SABIO_S3_MULTIPART_MAX_AGE_SECONDS": "1.5",
        "SABIO_S3_MULTIPART_SWEEP_INTERVAL_SECONDS": "0.2",
    }
    with running_server(tmp_path_factory.mktemp("sweep-home"), env) as server:
        yield server


def test_an_abandoned_upload_is_aborted_and_its_parts_freed(sweeping: SabioServer) -> None:
    s3 = boto3.client("s3", endpoint_url=sweeping.url)
    s3.create_bucket(Bucket="sweep")
    upload = s3.create_multipart_upload(Bucket="sweep", Key="big.bin")["UploadId"]
    s3.upload_part(Bucket="sweep", Key="big.bin", UploadId=upload, PartNumber=1, Body=b"x" * 1024)
    listed = s3.list_multipart_uploads(Bucket="sweep")
    assert [u["UploadId"] for u in listed["Uploads"]] == [upload]
    uploads_dir = sweeping.home / "artifacts" / ".sabio" / "uploads" / "sweep"
    assert _size(uploads_dir) >= 1024

    deadline = time.monotonic() + 20
    while "Uploads" in s3.list_multipart_uploads(Bucket="sweep"):
        assert time.monotonic() < deadline, "the upload was never aborted"
        time.sleep(0.2)
    with pytest.raises(ClientError) as gone:
        s3.upload_part(Bucket="sweep", Key="big.bin", UploadId=upload, PartNumber=2, Body=b"y")
    assert gone.value.response["Error"]["Code"] == "NoSuchUpload"
    assert _size(uploads_dir) == 0

    fresh = s3.create_multipart_upload(Bucket="sweep", Key="new.bin")["UploadId"]
    listed = s3.list_multipart_uploads(Bucket="sweep")  # younger than the age: kept
    assert [u["UploadId"] for u in listed["Uploads"]] == [fresh]


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
