"""Virtual-hosted-style requests (`Host: <bucket>.<base host>`) address the bucket by host
name; anything else is path-style."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from support.server import SabioServer


def test_boto3_with_virtual_addressing(server: SabioServer, bucket: str, s3: Any) -> None:
    # `<bucket>.localhost` need not resolve: the server itself is the HTTP proxy, so the
    # request reaches it with the virtual host name in `Host`.
    virtual = boto3.client(
        "s3",
        endpoint_url=f"http://localhost:{server.port}",
        config=Config(
            s3={"addressing_style": "virtual"},
            proxies={"http": f"http://127.0.0.1:{server.port}"},
        ),
    )
    put = virtual.put_object(Bucket=bucket, Key="dir/v.txt", Body=b"virtual")
    assert virtual.get_object(Bucket=bucket, Key="dir/v.txt")["Body"].read() == b"virtual"
    assert [o["Key"] for o in virtual.list_objects_v2(Bucket=bucket)["Contents"]] == ["dir/v.txt"]
    assert s3.head_object(Bucket=bucket, Key="dir/v.txt")["ETag"] == put["ETag"]  # path style
    virtual.delete_object(Bucket=bucket, Key="dir/v.txt")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_host_header_picks_the_bucket_under_a_base_host(raw: Any, bucket: str, s3: Any) -> None:
    s3.put_object(Bucket=bucket, Key="obj", Body=b"by host")
    hosted = raw("GET", "/obj", headers={"Host": f"{bucket}.s3.localhost.localstack.cloud:4566"})
    assert (hosted.status, hosted.body) == (200, b"by host")
    listing = raw("GET", "/?list-type=2", headers={"Host": f"{bucket}.localhost"})
    assert listing.status == 200 and b"<Key>obj</Key>" in listing.body
    # Not under a base host (an IP address, another name): path-style.
    assert raw("GET", f"/{bucket}/obj", headers={"Host": "127.0.0.1:9"}).body == b"by host"
    other = raw("GET", "/obj", headers={"Host": f"{bucket}.example.com"})
    assert other.status == 404 and b"<Code>NoSuchBucket</Code>" in other.body
