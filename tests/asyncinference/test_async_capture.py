"""Data capture on asynchronous endpoints: each request the queue hands to the model is
recorded as on a real-time endpoint, in SageMaker's JSON Lines under
<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/, and none is lost on a clean shutdown."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from asyncinference.async_helpers import FAST, echo_model, wait_for_object
from sabio.artifacts.local import LocalArtifactStore
from sabio.artifacts.uri import parse
from support.deploy import deploy, unique
from support.server import SabioServer


def capture_config(bucket: str) -> dict[str, Any]:
    return {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": f"s3://{bucket}/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
    }


def deploy_captured(sm: Any, s3: Any, model_uri: str) -> tuple[str, str]:
    """An asynchronous endpoint that also captures; returns (endpoint name, bucket)."""
    bucket = unique("async-capture")
    s3.create_bucket(Bucket=bucket)
    name = deploy(
        sm,
        model_uri,
        AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": f"s3://{bucket}/results"}},
        DataCaptureConfig=capture_config(bucket),
    )
    return name, bucket


def captured_keys(s3: Any, bucket: str, prefix: str, count: int) -> list[str]:
    """The capture objects under `prefix` once they hold `count` records (or after 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        keys = [
            item["Key"]
            for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        ]
        lines = sum(len(read_records(s3, bucket, key)) for key in keys)
        if lines >= count or time.monotonic() > deadline:
            return keys
        time.sleep(0.1)


def read_records(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in text.splitlines()]


def test_async_invocations_are_captured_as_the_model_saw_them(
    async_server: SabioServer, clients: tuple[Any, Any, Any], tmp_path: Path
) -> None:
    sm, runtime, s3 = clients
    name, bucket = deploy_captured(sm, s3, echo_model(async_server, tmp_path))
    summary = sm.describe_endpoint(EndpointName=name)["DataCaptureConfig"]
    assert summary["CaptureStatus"] == "Started"
    assert summary["DestinationS3Uri"] == f"s3://{bucket}/capture"

    inline_body = json.dumps({"row": 1}).encode()
    inline = runtime.invoke_endpoint_async(
        EndpointName=name, Body=inline_body, ContentType="application/json", InferenceId="row-1"
    )
    # From S3 without a ContentType: the model gets the object's Content-Type, and so does
    # the record; text/plain is not in JsonContentTypes, so it is kept as base64.
    stored_body = json.dumps({"row": 2}).encode()
    s3.put_object(Bucket=bucket, Key="inputs/2.txt", Body=stored_body, ContentType="text/plain")
    stored = runtime.invoke_endpoint_async(
        EndpointName=name, InputLocation=f"s3://{bucket}/inputs/2.txt"
    )
    answers = {
        "row-1": wait_for_object(s3, inline["OutputLocation"]),
        stored["InferenceId"]: wait_for_object(s3, stored["OutputLocation"]),
    }

    keys = captured_keys(s3, bucket, f"capture/{name}/AllTraffic/", 2)
    records = [record for key in keys for record in read_records(s3, bucket, key)]
    assert len(records) == 2
    for key in keys:
        parts = key.split("/")  # capture/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl
        assert len(parts) == 8 and parts[-1].endswith(".jsonl")
        assert [len(part) for part in parts[3:7]] == [4, 2, 2, 2]
    by_id = {record["eventMetadata"]["inferenceId"]: record for record in records}
    assert set(by_id) == set(answers)
    for inference_id, answer in answers.items():
        record = by_id[inference_id]
        assert record["eventVersion"] == "0"
        assert len(record["eventMetadata"]["eventId"]) == 36
        assert record["captureData"]["endpointOutput"] == {
            "observedContentType": "application/json",
            "mode": "OUTPUT",
            "data": answer.decode(),
            "encoding": "JSON",
        }
    assert by_id["row-1"]["captureData"]["endpointInput"] == {
        "observedContentType": "application/json",
        "mode": "INPUT",
        "data": inline_body.decode(),
        "encoding": "JSON",
    }
    from_s3 = by_id[stored["InferenceId"]]["captureData"]["endpointInput"]
    assert from_s3["observedContentType"] == "text/plain"
    assert from_s3["encoding"] == "BASE64"
    assert base64.b64decode(from_s3["data"]) == stored_body
    sm.delete_endpoint(EndpointName=name)


def test_a_clean_shutdown_writes_what_was_captured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Capture files would be written only once an hour: what exists after the stop was written
    # by the shutdown.
    home = tmp_path / "home"
    home.mkdir()
    server = SabioServer(home, env={**FAST, "SABIO_CAPTURE_FLUSH_SECONDS": "3600"})
    server.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
        sm, s3 = boto3.client("sagemaker"), boto3.client("s3")
        runtime = boto3.client("sagemaker-runtime")
        name, bucket = deploy_captured(sm, s3, echo_model(server, tmp_path))
        response = runtime.invoke_endpoint_async(
            EndpointName=name, Body=b'{"last": true}', ContentType="application/json"
        )
        wait_for_object(s3, response["OutputLocation"])
        assert not s3.list_objects_v2(Bucket=bucket, Prefix="capture/").get("Contents")
    finally:
        assert server.stop() == 0

    store = LocalArtifactStore(home / "artifacts")
    records = []
    for info in store.list(parse(f"s3://{bucket}/capture/{name}/AllTraffic/")):
        with store.open_read(info.uri) as stream:
            records += [json.loads(line) for line in stream.read().decode().splitlines()]
    assert [r["eventMetadata"]["inferenceId"] for r in records] == [response["InferenceId"]]
    assert records[0]["captureData"]["endpointInput"]["data"] == '{"last": true}'
