"""Data capture: SageMaker's JSON Lines records of inputs and outputs, written under
<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/ off the request path."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import boto3
import numpy as np

from sabio.artifacts.local import LocalArtifactStore
from sabio.artifacts.uri import parse
from support.deploy import deploy, store_archive, unique
from support.models import INFERENCE_PY, model_archive
from support.server import SabioServer


def captured(
    server: SabioServer, prefix: str, count: int, timeout: float = 15
) -> list[dict[str, Any]]:
    store = LocalArtifactStore(server.home / "artifacts")
    deadline = time.monotonic() + timeout
    while True:
        records = []
        for info in store.list(parse(prefix)):
            with store.open_read(info.uri) as stream:
                records += [json.loads(line) for line in stream.read().decode().splitlines()]
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def test_capture_records_inputs_outputs_and_ids(
    server: SabioServer, sm: Any, runtime: Any, tmp_path: Path
):
    archive = model_archive(tmp_path / "m.tar.gz", {})
    uri = store_archive(server, archive, f"{unique('cap')}/model.tar.gz")
    name = deploy(
        sm,
        uri,
        name=unique("cap"),
        DataCaptureConfig={
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": "s3://monitoring/capture",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {
                "CsvContentTypes": ["text/csv"],
                "JsonContentTypes": ["application/json"],
            },
        },
    )
    summary = sm.describe_endpoint(EndpointName=name)["DataCaptureConfig"]
    assert summary["CaptureStatus"] == "Started"
    assert summary["CurrentSamplingPercentage"] == 100
    assert summary["DestinationS3Uri"] == "s3://monitoring/capture"

    runtime.invoke_endpoint(
        EndpointName=name,
        ContentType="text/csv",
        Accept="text/csv",
        Body="5.1,3.5,1.4,0.2",
        InferenceId="row-1",
    )
    runtime.invoke_endpoint(
        EndpointName=name, ContentType="application/json", Body="[[6.7, 3.0, 5.2, 2.3]]"
    )
    buffer = io.BytesIO()
    np.save(buffer, np.array([[5.1, 3.5, 1.4, 0.2]]))
    runtime.invoke_endpoint(
        EndpointName=name,
        ContentType="application/x-npy",
        Accept="application/json",
        Body=buffer.getvalue(),
    )

    records = captured(server, f"s3://monitoring/capture/{name}/AllTraffic/", 3)
    assert len(records) == 3
    files = list(
        LocalArtifactStore(server.home / "artifacts").list(
            parse(f"s3://monitoring/capture/{name}/AllTraffic/")
        )
    )
    parts = files[0].uri.key.split("/")
    assert len(parts) == 8  # capture/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>
    assert parts[-1].endswith(".jsonl")
    by_id = {r["eventMetadata"].get("inferenceId"): r for r in records}
    csv_record = by_id["row-1"]
    assert csv_record["eventVersion"] == "0"
    assert csv_record["captureData"]["endpointInput"] == {
        "observedContentType": "text/csv",
        "mode": "INPUT",
        "data": "5.1,3.5,1.4,0.2",
        "encoding": "CSV",
    }
    assert csv_record["captureData"]["endpointOutput"]["mode"] == "OUTPUT"
    assert csv_record["captureData"]["endpointOutput"]["data"].strip() == "0"
    modes = {r["captureData"]["endpointInput"]["encoding"] for r in records}
    assert modes == {"CSV", "JSON", "BASE64"}
    npy = next(r for r in records if r["captureData"]["endpointInput"]["encoding"] == "BASE64")
    assert base64.b64decode(npy["captureData"]["endpointInput"]["data"]) == buffer.getvalue()
    assert all(len(r["eventMetadata"]["eventId"]) == 36 for r in records)
    sm.delete_endpoint(EndpointName=name)


def test_sampling_zero_captures_nothing(server: SabioServer, sm: Any, runtime: Any, tmp_path: Path):
    archive = model_archive(tmp_path / "m.tar.gz", {"code/inference.py": INFERENCE_PY})
    uri = store_archive(server, archive, f"{unique('nocap')}/model.tar.gz")
    name = deploy(
        sm,
        uri,
        name=unique("nocap"),
        DataCaptureConfig={
            "InitialSamplingPercentage": 0,
            "DestinationS3Uri": "s3://monitoring/none",
            "CaptureOptions": [{"CaptureMode": "Input"}],
        },
    )
    for _ in range(5):
        runtime.invoke_endpoint(
            EndpointName=name, ContentType="application/json", Body="[[1, 2, 3, 4]]"
        )
    assert captured(server, f"s3://monitoring/none/{name}/", 1, timeout=1.5) == []
    sm.delete_endpoint(EndpointName=name)


def test_records_wait_while_their_destination_cannot_be_written(
    server: SabioServer, sm: Any, runtime: Any, endpoint_url: str, tmp_path: Path
):
    """A destination that cannot take the capture files (here an object already sits where
    the endpoint's folder must go) keeps the records buffered; once it can, they are written,
    none lost."""
    archive = model_archive(tmp_path / "m.tar.gz", {"code/inference.py": INFERENCE_PY})
    uri = store_archive(server, archive, f"{unique('blocked')}/model.tar.gz")
    name = unique("blocked")
    s3 = boto3.client("s3", endpoint_url=endpoint_url)
    bucket = unique("held")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=f"capture/{name}", Body=b"in the way")
    deploy(
        sm,
        uri,
        name=name,
        DataCaptureConfig={
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": f"s3://{bucket}/capture",
            "CaptureOptions": [{"CaptureMode": "Input"}],
        },
    )
    for n in range(3):
        runtime.invoke_endpoint(
            EndpointName=name, ContentType="application/json", Body=f"[[{n}, 2, 3, 4]]"
        )
    time.sleep(1.0)  # several flushes (every 0.3 s in tests), each failing
    s3.delete_object(Bucket=bucket, Key=f"capture/{name}")
    records = captured(server, f"s3://{bucket}/capture/{name}/", 3)
    inputs = sorted(
        base64.b64decode(r["captureData"]["endpointInput"]["data"]).decode() for r in records
    )
    assert inputs == [f"[[{n}, 2, 3, 4]]" for n in range(3)]
    sm.delete_endpoint(EndpointName=name)
