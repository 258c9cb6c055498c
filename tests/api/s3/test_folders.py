"""Folder markers (keys ending in `/`, as consoles and s3fs `mkdir` create them) through the
S3 gateway: ordinary objects that coexist with the keys under them."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError


def test_folder_marker_is_an_object_beside_the_keys_under_it(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="data/train.csv", Body=b"1,2\n")
    put = s3.put_object(Bucket=bucket, Key="data/", Body=b"")
    assert put["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    s3.put_object(Bucket=bucket, Key="data/empty/", Body=b"")

    head = s3.head_object(Bucket=bucket, Key="data/")
    assert (head["ContentLength"], head["ETag"]) == (0, put["ETag"])
    assert s3.get_object(Bucket=bucket, Key="data/")["Body"].read() == b""
    assert s3.get_object(Bucket=bucket, Key="data/train.csv")["Body"].read() == b"1,2\n"

    listed = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["data/", "data/empty/", "data/train.csv"]
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["data/"]
    inside = s3.list_objects_v2(Bucket=bucket, Prefix="data/", Delimiter="/")
    assert [o["Key"] for o in inside["Contents"]] == ["data/", "data/train.csv"]
    assert [p["Prefix"] for p in inside["CommonPrefixes"]] == ["data/empty/"]

    s3.delete_object(Bucket=bucket, Key="data/")
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="data/")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert s3.get_object(Bucket=bucket, Key="data/train.csv")["Body"].read() == b"1,2\n"

    s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "data/train.csv"}, {"Key": "data/empty/"}]}
    )
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    s3.delete_bucket(Bucket=bucket)  # no marker left behind keeps it from being empty


def test_s3fs_mkdir_and_listing(endpoint_url: str, bucket: str) -> None:
    s3fs = pytest.importorskip("s3fs")
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint_url}, use_listings_cache=False)
    fs.mkdir(f"{bucket}/models/")
    fs.touch(f"{bucket}/models/")  # an empty object: the folder marker
    fs.pipe(f"{bucket}/models/a.bin", b"x")
    assert fs.isdir(f"{bucket}/models")
    assert f"{bucket}/models/a.bin" in fs.ls(f"{bucket}/models", detail=False)
    assert fs.cat(f"{bucket}/models/a.bin") == b"x"
    fs.rm(f"{bucket}/models", recursive=True)
    assert fs.ls(bucket, detail=False) == []
