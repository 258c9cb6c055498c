"""Batch transform against a live server: real model workers, outputs checked record by record
against scikit-learn's own predictions, across splits, assemblies, formats and DataProcessing."""

from __future__ import annotations

import gzip
import json
from typing import Any

import numpy as np

from sabio.transform.records import frame_recordio, frame_tfrecord
from support.deploy import unique
from support.server import SabioServer
from support.training import put_bytes, read_object
from transform.jobs import FILES, IRIS, create, exists, predictions, wait


def decode(output: str, split: str, strategy: str | None, assemble: str) -> list[int]:
    """The predictions in a JSON output of the default handler, asserting its assembly."""
    if assemble == "Line":
        assert output.endswith("\n")
        return [p for line in output.splitlines() for p in json.loads(line)]
    assert not output.endswith("\n")
    if split == "Line" and strategy == "SingleRecord":
        parts = output.replace("][", "]\n[").splitlines()
        assert all(len(json.loads(part)) == 1 for part in parts)
        return [json.loads(part)[0] for part in parts]
    return list(json.loads(output))


COMBINATIONS = [
    ("None", None, "None"),
    ("None", "SingleRecord", "Line"),
    ("Line", "SingleRecord", "Line"),
    ("Line", "SingleRecord", "None"),
    ("Line", "MultiRecord", "Line"),
    ("Line", "MultiRecord", "None"),
]


def test_every_split_strategy_and_assembly_matches_sklearn(
    server: SabioServer, sm: Any, models: dict[str, str], iris_prefix: str
) -> None:
    jobs = {}
    for split, strategy, assemble in COMBINATIONS:
        options: dict[str, Any] = {"split": split, "assemble": assemble}
        if strategy:
            options["BatchStrategy"] = strategy
        output = f"s3://results/{unique('combo')}"
        name = create(
            sm, models["default"], iris_prefix, output, accept="application/json", **options
        )
        jobs[name] = (split, strategy, assemble, output)
    for name, (split, strategy, assemble, output) in jobs.items():
        described = wait(sm, name)
        assert described["TransformJobStatus"] == "Completed", described
        for relative, rows in FILES.items():
            text = read_object(server, f"{output}/{relative}.out").decode()
            got = decode(text, split, strategy, assemble)
            assert got == predictions(IRIS.data[rows]), (split, strategy, assemble, relative)
        assert described["TransformStartTime"] <= described["TransformEndTime"]
        assert described["BatchStrategy"] == (strategy or "SingleRecord")
        assert described["MaxPayloadInMB"] == 6


def test_a_large_file_is_batched_concurrently_and_reassembled_in_order(
    server: SabioServer, sm: Any, models: dict[str, str]
) -> None:
    rng = np.random.default_rng(7)
    rows = np.round(rng.uniform(IRIS.data.min(0), IRIS.data.max(0), size=(150_000, 4)), 2)
    text = "".join(f"{a:.2f},{b:.2f},{c:.2f},{d:.2f}\n" for a, b, c, d in rows)
    prefix = f"s3://data/{unique('big')}"
    put_bytes(server, f"{prefix}/big.csv", text.encode())
    output = f"s3://results/{unique('big')}/"
    name = create(
        sm,
        models["default"],
        f"{prefix}/big.csv",
        output,
        split="Line",
        accept="text/csv",
        assemble="Line",
        BatchStrategy="MultiRecord",
        MaxPayloadInMB=1,
        MaxConcurrentTransforms=3,
        instances=2,
    )
    described = wait(sm, name)
    assert described["TransformJobStatus"] == "Completed", described
    result = read_object(server, f"{output}big.csv.out").decode().splitlines()
    assert [int(v) for v in result] == predictions(rows)


def test_manifest_inputs_are_mirrored(
    server: SabioServer, sm: Any, models: dict[str, str], iris_prefix: str
) -> None:
    manifest = f"s3://data/{unique('manifest')}.json"
    entries = [{"prefix": f"{iris_prefix}/"}, "sub/part-2.csv", "part-3.csv"]
    put_bytes(server, manifest, json.dumps(entries).encode())
    output = f"s3://results/{unique('manifest')}"
    name = create(
        sm,
        models["default"],
        manifest,
        output,
        data_type="ManifestFile",
        split="Line",
        accept="text/csv",
    )
    assert wait(sm, name)["TransformJobStatus"] == "Completed"
    for relative in ("sub/part-2.csv", "part-3.csv"):
        lines = read_object(server, f"{output}/{relative}.out").decode().splitlines()
        assert [int(v) for v in lines] == predictions(IRIS.data[FILES[relative]])
    assert not exists(server, f"{output}/part-1.csv.out")


def test_data_processing_filters_and_joins(
    server: SabioServer, sm: Any, models: dict[str, str]
) -> None:
    prefix = f"s3://data/{unique('dp')}"
    csv_rows = "".join(
        f"id-{i}," + ",".join(f"{v:g}" for v in row) + "\n" for i, row in enumerate(IRIS.data)
    )
    put_bytes(server, f"{prefix}/csv/iris.csv", csv_rows.encode())
    objects = "".join(
        json.dumps({"id": i, "features": row.tolist()}) + "\n" for i, row in enumerate(IRIS.data)
    )
    put_bytes(server, f"{prefix}/objects/iris.jsonl", objects.encode())
    document = {"id": "doc", "features": IRIS.data[:3].tolist()}
    put_bytes(server, f"{prefix}/document/iris.json", json.dumps(document, indent=2).encode())
    arrays = "".join(json.dumps(row.tolist()) + "\n" for row in IRIS.data[:20])
    put_bytes(server, f"{prefix}/arrays/iris.jsonl", arrays.encode())
    expected = predictions(IRIS.data)
    out = f"s3://results/{unique('dp')}"
    csv_job = create(
        sm,
        models["custom"],
        f"{prefix}/csv/",
        f"{out}/csv",
        split="Line",
        accept="text/csv",
        assemble="Line",
        BatchStrategy="MultiRecord",
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
    )
    objects_job = create(
        sm,
        models["custom"],
        f"{prefix}/objects/",
        f"{out}/objects",
        content_type="application/jsonlines",
        split="Line",
        accept="application/jsonlines",
        assemble="Line",
        BatchStrategy="MultiRecord",
        DataProcessing={
            "InputFilter": "$.features",
            "JoinSource": "Input",
            "OutputFilter": "$['id','SageMakerOutput']",
        },
    )
    arrays_job = create(
        sm,
        models["custom"],
        f"{prefix}/arrays/",
        f"{out}/arrays",
        content_type="application/json",
        split="Line",
        accept="application/json",
        assemble="Line",
        BatchStrategy="SingleRecord",
        DataProcessing={"JoinSource": "Input"},
    )
    document_job = create(
        sm,
        models["custom"],
        f"{prefix}/document/",
        f"{out}/document",
        content_type="application/json",
        accept="application/json",
        DataProcessing={"InputFilter": "$.features", "JoinSource": "Input"},
    )
    for name in (csv_job, objects_job, arrays_job, document_job):
        described = wait(sm, name)
        assert described["TransformJobStatus"] == "Completed", described
    lines = read_object(server, f"{out}/csv/iris.csv.out").decode().splitlines()
    assert lines == [f"id-{i},{p}" for i, p in enumerate(expected)]
    lines = read_object(server, f"{out}/objects/iris.jsonl.out").decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": i, "SageMakerOutput": p} for i, p in enumerate(expected)
    ]
    lines = read_object(server, f"{out}/arrays/iris.jsonl.out").decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"SageMakerInput": row.tolist(), "SageMakerOutput": {"predictions": [p]}}
        for row, p in zip(IRIS.data[:20], expected[:20], strict=True)
    ]
    joined = json.loads(read_object(server, f"{out}/document/iris.json.out"))
    assert joined == {**document, "SageMakerOutput": {"predictions": expected[:3]}}
    described = sm.describe_transform_job(TransformJobName=objects_job)
    assert described["DataProcessing"] == {
        "InputFilter": "$.features",
        "OutputFilter": "$['id','SageMakerOutput']",
        "JoinSource": "Input",
    }


def test_gzip_streaming_recordio_and_tfrecord_inputs(
    server: SabioServer, sm: Any, models: dict[str, str]
) -> None:
    prefix = f"s3://data/{unique('formats')}"
    rows = IRIS.data[:60]
    lines = [",".join(f"{v:g}" for v in row).encode() for row in rows]
    put_bytes(server, f"{prefix}/gz/iris.csv.gz", gzip.compress(b"\n".join(lines) + b"\n"))
    put_bytes(server, f"{prefix}/rec/iris.rec", b"".join(frame_recordio(x) for x in lines))
    put_bytes(server, f"{prefix}/rec/empty.rec", b"")
    put_bytes(server, f"{prefix}/tf/iris.tfrecord", b"".join(frame_tfrecord(x) for x in lines))
    out = f"s3://results/{unique('formats')}"
    jobs = [
        # SplitType None with MaxPayloadInMB 0: the decompressed object streams to the worker.
        create(
            sm,
            models["custom"],
            f"{prefix}/gz/",
            f"{out}/gz",
            accept="text/csv",
            MaxPayloadInMB=0,
            compression="Gzip",
        ),
        create(
            sm,
            models["custom"],
            f"{prefix}/rec/",
            f"{out}/rec",
            content_type="application/x-recordio",
            split="RecordIO",
            accept="text/csv",
            BatchStrategy="MultiRecord",
        ),
        create(
            sm,
            models["custom"],
            f"{prefix}/tf/",
            f"{out}/tf",
            content_type="application/x-record",
            split="TFRecord",
            accept="text/csv",
            BatchStrategy="SingleRecord",
        ),
    ]
    for name in jobs:
        described = wait(sm, name)
        assert described["TransformJobStatus"] == "Completed", described
    expected = predictions(rows)
    for relative in ("gz/iris.csv.gz", "rec/iris.rec", "tf/iris.tfrecord"):
        result = read_object(server, f"{out}/{relative}.out").decode().splitlines()
        assert [int(v) for v in result] == expected, relative
    assert read_object(server, f"{out}/rec/empty.rec.out") == b""


def test_the_model_sees_the_batch_environment(
    server: SabioServer, sm: Any, models: dict[str, str]
) -> None:
    source = put_bytes(server, f"s3://data/{unique('env')}/one.json", b"[[5.1, 3.5, 1.4, 0.2]]")
    output = f"s3://results/{unique('env')}"
    name = create(
        sm,
        models["custom"],
        source,
        output,
        content_type="application/json",
        accept="application/x-environment",
        MaxPayloadInMB=2,
        MaxConcurrentTransforms=5,
        Environment={"PREDICT_SLEEP": "0"},
    )
    sm.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
    )
    env = json.loads(read_object(server, f"{output}/one.json.out"))
    assert env["SAGEMAKER_BATCH"] == "true"
    assert env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] == "2"
    assert env["SAGEMAKER_BATCH_STRATEGY"] == "SINGLE_RECORD"
    assert env["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] == "5"
    assert env["PREDICT_SLEEP"] == "0"
