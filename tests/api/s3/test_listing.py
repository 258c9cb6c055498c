"""Buckets and listings through the S3 gateway: paginators, delimiters, markers, URL encoding."""

from __future__ import annotations

import datetime
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote

import pytest
from botocore.exceptions import ClientError


def code(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = error.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def put_many(s3: Any, bucket: str, keys: list[str]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=b"x"), keys))


def test_bucket_lifecycle(s3: Any) -> None:
    name = f"gw-life-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    listed = {b["Name"]: b for b in s3.list_buckets()["Buckets"]}
    created = listed[name]["CreationDate"]
    assert abs(created - datetime.datetime.now(datetime.UTC)).total_seconds() < 30
    assert s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None  # us-east-1
    with pytest.raises(ClientError) as error:
        s3.create_bucket(Bucket=name)
    assert code(error) == ("BucketAlreadyOwnedByYou", 409)
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as error:
        s3.delete_bucket(Bucket=name)
    assert code(error) == ("BucketNotEmpty", 409)
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as error:
        s3.head_bucket(Bucket=name)
    assert code(error) == ("404", 404)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


@pytest.mark.parametrize("name", ["UPPER-case", "ab", "under_score", "-dash", "a..b"])
def test_bad_bucket_names(s3: Any, name: str) -> None:
    from botocore.exceptions import ParamValidationError

    try:
        s3.create_bucket(Bucket=name)
    except ParamValidationError:  # botocore refuses a few names itself
        return
    except ClientError as error:
        response = error.response
        assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (
            "InvalidBucketName",
            400,
        )
        return
    pytest.fail(f"{name} was accepted")


def test_paginating_1100_keys(s3: Any, bucket: str) -> None:
    keys = [f"data/{i:05d}.csv" for i in range(1100)]
    put_many(s3, bucket, keys)
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket))
    assert [p["KeyCount"] for p in pages] == [1000, 100]
    assert [o["Key"] for p in pages for o in p["Contents"]] == keys
    assert pages[0]["IsTruncated"] and not pages[1]["IsTruncated"]
    small = list(
        s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, PaginationConfig={"PageSize": 300}
        )
    )
    assert [p["KeyCount"] for p in small] == [300, 300, 300, 200]
    v1 = list(
        s3.get_paginator("list_objects").paginate(Bucket=bucket, PaginationConfig={"PageSize": 700})
    )
    assert [len(p["Contents"]) for p in v1] == [700, 400]
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="data/01097.csv")
    assert [o["Key"] for o in after["Contents"]] == ["data/01098.csv", "data/01099.csv"]
    item = pages[0]["Contents"][0]
    assert (item["Size"], item["StorageClass"], item["ETag"]) == (
        1,
        "STANDARD",
        '"9dd4e461268c8034f5c8564e155c67a6"',
    )


def test_delimiter_and_common_prefixes(s3: Any, bucket: str) -> None:
    keys = ["a.txt", "dir1/x", "dir1/y", "dir1/sub/z", "dir2/x", "dir3/x", "z.txt"]
    put_many(s3, bucket, keys)
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["a.txt", "z.txt"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["dir1/", "dir2/", "dir3/"]
    inner = s3.list_objects_v2(Bucket=bucket, Delimiter="/", Prefix="dir1/")
    assert [o["Key"] for o in inner["Contents"]] == ["dir1/x", "dir1/y"]
    assert [p["Prefix"] for p in inner["CommonPrefixes"]] == ["dir1/sub/"]
    # Entries count alike toward MaxKeys, and a page never splits a common prefix.
    pages = list(
        s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 2}
        )
    )
    flat = [(o["Key"]) for p in pages for o in p.get("Contents", [])] + [
        c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])
    ]
    assert sorted(flat) == ["a.txt", "dir1/", "dir2/", "dir3/", "z.txt"]
    assert [p["KeyCount"] for p in pages] == [2, 2, 1]
    v1 = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=2)
    assert (v1["IsTruncated"], v1["NextMarker"]) == (True, "dir1/")
    assert s3.list_objects_v2(Bucket=bucket, Prefix="nothing/")["KeyCount"] == 0


def test_keys_with_unusual_characters_round_trip(s3: Any, bucket: str) -> None:
    keys = [
        "sp ace/file+plus.txt",
        "percent%20.txt",
        "ünïcödé/ключ.bin",
        "amp&lt;.xml",
        "q?mark#hash",
    ]
    put_many(s3, bucket, keys)
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]  # encoding-type=url
    assert sorted(listed) == sorted(keys)
    # Asked for explicitly, the encoding is left to the caller to undo.
    listed_raw = s3.list_objects(Bucket=bucket, EncodingType="url")["Contents"]
    assert "sp%20ace/file%2Bplus.txt" in [o["Key"] for o in listed_raw]
    assert sorted(unquote(o["Key"]) for o in listed_raw) == sorted(keys)
    for key in keys:
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"x"


def test_fetch_owner_and_versioning(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    listed = s3.list_objects_v2(Bucket=bucket, FetchOwner=True)
    assert "ID" in listed["Contents"][0]["Owner"]
    assert "Owner" not in s3.list_objects_v2(Bucket=bucket)["Contents"][0]
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
