"""A thousand accepted requests survive a SIGKILL of the server: after a restart on the same
home every one is answered, exactly once, with its own result."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest

from asyncinference.async_helpers import FAST, deploy_async, echo_model
from support.server import SabioServer

COUNT = 1000


def result_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def test_a_killed_server_answers_every_accepted_request_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = SabioServer(tmp_path / "home", env=dict(FAST))
    (tmp_path / "home").mkdir()
    server.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
        sm, s3 = boto3.client("sagemaker"), boto3.client("s3")
        runtime = boto3.client("sagemaker-runtime")
        name, bucket = deploy_async(
            sm,
            s3,
            echo_model(server, tmp_path),
            ClientConfig={"MaxConcurrentInvocationsPerInstance": 4},
        )

        def submit(n: int) -> tuple[int, str]:
            body = json.dumps({"n": n, "sleep": 0.005}).encode()
            response = runtime.invoke_endpoint_async(
                EndpointName=name, Body=body, ContentType="application/json"
            )
            return n, response["OutputLocation"]

        with ThreadPoolExecutor(16) as pool:
            locations = dict(pool.map(submit, range(COUNT)))
        done_before = len(result_keys(s3, bucket, "results/"))
        assert done_before < COUNT, "the kill should land while requests are being answered"
        server.process.kill()  # type: ignore[union-attr]
        server.process.wait()  # type: ignore[union-attr]
        server.start()

        # Watched on disk (the embedded store) so that the watching adds no load to the server.
        results = server.home / "artifacts" / bucket / "results"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if sum(1 for n in os.listdir(results) if n.endswith(".out")) >= COUNT:
                break
            time.sleep(0.25)
        keys = result_keys(s3, bucket, "results/")
        assert len(keys) == len(set(keys)) == COUNT
        assert result_keys(s3, bucket, "failures/") == []
        assert {f"s3://{bucket}/{key}" for key in keys} == set(locations.values())
        for n in range(0, COUNT, 97):
            key = locations[n].removeprefix(f"s3://{bucket}/")
            answer = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            assert answer["echo"]["n"] == n
    finally:
        server.stop()
