"""Data tools that speak S3, unmodified, against the gateway: s3fs (fsspec) and pandas."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

s3fs = pytest.importorskip("s3fs", reason="s3fs is in the dev extra")
pd = pytest.importorskip("pandas", reason="pandas is in the dev extra")


@pytest.fixture
def fs(endpoint_url: str) -> Any:
    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint_url}, skip_instance_cache=True)


def test_s3fs_ls_open_put_get(fs: Any, bucket: str, tmp_path: Path) -> None:
    fs.pipe(f"{bucket}/data/a.txt", b"hello")
    fs.pipe(f"{bucket}/data/sub/b.txt", b"world")
    assert fs.ls(f"{bucket}/data", detail=False) == [f"{bucket}/data/a.txt", f"{bucket}/data/sub"]
    assert fs.find(bucket) == [f"{bucket}/data/a.txt", f"{bucket}/data/sub/b.txt"]
    assert fs.info(f"{bucket}/data/a.txt")["size"] == 5
    assert fs.isdir(f"{bucket}/data/sub") and not fs.exists(f"{bucket}/nope")

    big = os.urandom(12 * 1024 * 1024)
    with fs.open(f"{bucket}/stream.bin", "wb", block_size=5 * 1024 * 1024) as handle:
        for start in range(0, len(big), 1024 * 1024):  # written as a multipart upload
            handle.write(big[start : start + 1024 * 1024])
    with fs.open(f"{bucket}/stream.bin", "rb") as handle:
        handle.seek(7 * 1024 * 1024)
        assert handle.read(100) == big[7 * 1024 * 1024 : 7 * 1024 * 1024 + 100]  # a ranged GET
    assert fs.cat(f"{bucket}/stream.bin") == big

    local = tmp_path / "local.bin"
    local.write_bytes(big[:3_000_000])
    fs.put(str(local), f"{bucket}/put/local.bin")
    fs.get(f"{bucket}/put/local.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == local.read_bytes()

    fs.rm(f"{bucket}/data", recursive=True)
    assert fs.ls(bucket, detail=False, refresh=True) == [
        f"{bucket}/put",
        f"{bucket}/stream.bin",
    ]


def test_s3fs_makes_and_removes_buckets(fs: Any) -> None:
    name = f"gw-fs-{uuid.uuid4().hex[:8]}"
    fs.mkdir(name)
    assert fs.exists(name)
    with pytest.raises(FileExistsError):
        fs.mkdir(name)
    fs.rmdir(name)
    assert not fs.exists(name)


def test_pandas_to_csv_and_read_csv(endpoint_url: str, bucket: str) -> None:
    options = {"client_kwargs": {"endpoint_url": endpoint_url}}
    frame = pd.DataFrame({"id": range(1000), "name": [f"row {i}" for i in range(1000)]})
    frame.to_csv(f"s3://{bucket}/tables/rows.csv", index=False, storage_options=options)
    back = pd.read_csv(f"s3://{bucket}/tables/rows.csv", storage_options=options)
    pd.testing.assert_frame_equal(back, frame)
    chunks = pd.read_csv(f"s3://{bucket}/tables/rows.csv", storage_options=options, chunksize=300)
    assert sum(len(chunk) for chunk in chunks) == 1000
