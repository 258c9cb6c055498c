"""Batch data capture: the manifests SageMaker writes under DestinationS3Uri, parsed back to the
records they name, and the inference ids GenerateInferenceId appends to every output record."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from sabio.transform.capture import InferenceIds
from support.deploy import create_model, store_archive, unique
from support.models import model_archive
from support.server import SabioServer
from support.training import put_bytes, read_object
from transform.jobs import INFERENCE, IRIS, create, csv_text, predictions, wait

START = datetime(2022, 8, 30, 0, 49, 15, tzinfo=UTC).timestamp()


def manifest(server: SabioServer, destination: str, folder: str, name: str, started: Any) -> Any:
    stamp = started.astimezone(UTC).strftime("%Y/%m/%d/%H")
    return json.loads(read_object(server, f"{destination}/{folder}/{stamp}/{name}.jsonl"))


def test_capture_manifests_name_every_record_and_outputs_carry_inference_ids(
    server: SabioServer, tmp_path: Path
) -> None:
    sm = boto3.client("sagemaker", endpoint_url=server.url)
    archive = model_archive(tmp_path / "custom.tar.gz", {"code/inference.py": INFERENCE})
    uri = store_archive(server, archive, f"{unique('capture')}.tgz")
    model = create_model(sm, uri, "iris-capture")
    prefix = f"s3://data/{unique('capture')}"
    parts = {"part-1.csv": IRIS.data[:30], "sub/part-2.csv": IRIS.data[30:50]}
    for relative, rows in parts.items():
        put_bytes(server, f"{prefix}/{relative}", csv_text(rows).encode())
    destination = f"s3://capture/{unique('batch')}"
    config = {
        "DestinationS3Uri": destination,
        "KmsKeyId": "alias/capture",
        "GenerateInferenceId": True,
    }
    output = f"s3://results/{unique('capture')}"
    name = create(
        sm,
        model,
        f"{prefix}/",
        output,
        split="Line",
        accept="text/csv",
        assemble="Line",
        BatchStrategy="MultiRecord",
        DataCaptureConfig=config,
    )
    plain_output = f"s3://results/{unique('plain')}"
    plain = create(
        sm,
        model,
        f"{prefix}/part-1.csv",
        plain_output,
        accept="application/json",
        DataCaptureConfig={"DestinationS3Uri": f"{destination}-plain"},
    )
    described = wait(sm, name)
    assert described["TransformJobStatus"] == "Completed", described
    assert described["DataCaptureConfig"] == config
    started = described["TransformStartTime"]
    time_text = started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    inputs = manifest(server, destination, "input", name, started)
    outputs = manifest(server, destination, "output", name, started)
    assert inputs == [{"prefix": f"{prefix}/"}, *parts]
    assert outputs == [{"prefix": f"{output}/"}, *(f"{r}.out" for r in parts)]
    ids = set()
    for source, result in zip(inputs[1:], outputs[1:], strict=True):
        rows = read_object(server, inputs[0]["prefix"] + source).decode().splitlines()
        lines = read_object(server, outputs[0]["prefix"] + result).decode().splitlines()
        assert len(lines) == len(rows) == len(parts[source])
        expected = predictions(parts[source])
        for line, prediction in zip(lines, expected, strict=True):
            value, inference_id, when = line.split(",")
            assert int(value) == prediction
            assert str(uuid.UUID(inference_id)) == inference_id
            assert when == time_text
            ids.add(inference_id)
    assert len(ids) == 50  # one id per record

    described = wait(sm, plain)
    assert described["TransformJobStatus"] == "Completed", described
    assert described["DataCaptureConfig"] == {"DestinationS3Uri": f"{destination}-plain"}
    started = described["TransformStartTime"]
    assert manifest(server, f"{destination}-plain", "input", plain, started) == [
        {"prefix": f"{prefix}/"},
        "part-1.csv",
    ]
    result = json.loads(read_object(server, f"{plain_output}/part-1.csv.out"))
    assert result == {"predictions": predictions(IRIS.data[:30])}  # no ids asked for


def test_inference_ids_in_json_and_json_lines_outputs() -> None:
    stamp = InferenceIds(None, START)
    one = json.loads(stamp(b'{"predictions": [1, 2]}', "application/json"))
    assert one.pop("SageMakerInferenceTime") == "2022-08-30T00:49:15Z"
    assert uuid.UUID(one.pop("SageMakerInferenceId"))
    assert one == {"predictions": [1, 2]}
    lines = stamp(b'{"output": 0}\n1\n\n', "application/jsonlines").decode().split("\n")
    assert lines[2:] == ["", ""]
    records = [json.loads(line) for line in lines[:2]]
    assert [r.get("output", r.get("SageMakerOutput")) for r in records] == [0, 1]
    assert len({r["SageMakerInferenceId"] for r in records}) == 2
    csv = InferenceIds("text/csv", START)(b"0\r\n1\n", None).decode()
    assert [line.split(",")[2] for line in csv.splitlines()] == ["2022-08-30T00:49:15Z"] * 2
    assert csv.endswith("\n") and csv.count("\r\n") == 1
    assert InferenceIds("image/png", START)(b"\x89PNG", None) == b"\x89PNG"
