"""Batch transform against a live server: real model workers, outputs checked record by record
against scikit-learn's own predictions, DataProcessing, failures, stops, the waiter."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError
from sklearn.datasets import load_iris

from sabio.artifacts.local import LocalArtifactStore
from sabio.artifacts.uri import parse
from sabio.transform.records import frame_recordio, frame_tfrecord
from support.deploy import ROLE, SKLEARN_IMAGE, store_archive, unique
from support.models import iris_model, model_archive
from support.server import SabioServer
from support.training import put_bytes, read_object

INFERENCE = """\
import json, os, time
import joblib
import numpy as np

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def _features(value):
    return value["features"] if isinstance(value, dict) else value

def _framed(body, header, size_of):
    rows, position = [], 0
    while position < len(body):
        length = size_of(body[position : position + header])
        data = body[position + header : position + header + length]
        rows.append([float(v) for v in data.decode().split(",")])
        position += header + length + (-length % 4 if header == 8 else 4)
    return rows

def input_fn(body, content_type):
    if content_type == "application/x-recordio":
        rows = _framed(body, 8, lambda h: int.from_bytes(h[4:8], "little") & (2**29 - 1))
        return np.asarray(rows, dtype=float).reshape(-1, 4)
    if content_type == "application/x-tfrecord":
        rows = _framed(body, 12, lambda h: int.from_bytes(h[:8], "little"))
        return np.asarray(rows, dtype=float).reshape(-1, 4)
    if content_type == "application/x-record":
        body = body.decode()
        content_type = "text/csv"
    if isinstance(body, bytes):
        body = body.decode()
    if content_type == "text/csv":
        rows = [[float(v) for v in line.split(",")] for line in body.splitlines() if line.strip()]
    elif content_type == "application/jsonlines":
        rows = [_features(json.loads(line)) for line in body.splitlines() if line.strip()]
    else:
        rows = _features(json.loads(body))
    return np.asarray(rows, dtype=float).reshape(-1, 4)

def predict_fn(data, model):
    time.sleep(float(os.environ.get("PREDICT_SLEEP", "0")))
    if (data == -999).any():
        raise ValueError("marker value -999 in the input")
    if (data == -998).any():
        os._exit(3)
    return model.predict(data)

def output_fn(prediction, accept):
    values = [int(p) for p in prediction]
    if accept == "text/csv":
        return "".join(f"{v}\\n" for v in values), accept
    if accept == "application/jsonlines":
        return "".join(json.dumps(v) + "\\n" for v in values), accept
    if accept == "application/x-environment":
        keys = sorted(k for k in os.environ if k.startswith(("SAGEMAKER_", "PREDICT_")))
        return json.dumps({k: os.environ[k] for k in keys}), accept
    return json.dumps({"predictions": values}), "application/json"
"""

IRIS = load_iris()
MODEL = iris_model()


def csv_text(rows: np.ndarray) -> str:
    return "".join(",".join(f"{v:g}" for v in row) + "\n" for row in rows)


def predictions(rows: np.ndarray) -> list[int]:
    return [int(p) for p in MODEL.predict(rows)]


@pytest.fixture(scope="module")
def sm(server: SabioServer) -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", server.url)
        yield boto3.client("sagemaker")


@pytest.fixture(scope="module")
def models(
    server: SabioServer, sm: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Two models: scikit-learn's framework defaults, and one with the handlers above."""
    folder = tmp_path_factory.mktemp("transform-models")
    names = {}
    for kind, files in (("default", {}), ("custom", {"code/inference.py": INFERENCE})):
        uri = store_archive(server, model_archive(folder / f"{kind}.tar.gz", files), f"{kind}.tgz")
        name = unique(f"iris-{kind}")
        sm.create_model(
            ModelName=name,
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataUrl": f"s3://models/{kind}.tgz"},
        )
        assert uri.endswith(f"{kind}.tgz")
        names[kind] = name
    return names


@pytest.fixture(scope="module")
def iris_prefix(server: SabioServer) -> str:
    """Iris in three CSV files under a prefix, one in a sub-folder."""
    prefix = f"s3://data/{unique('iris')}"
    put_bytes(server, f"{prefix}/part-1.csv", csv_text(IRIS.data[:50]).encode())
    put_bytes(server, f"{prefix}/sub/part-2.csv", csv_text(IRIS.data[50:100]).encode())
    put_bytes(server, f"{prefix}/part-3.csv", csv_text(IRIS.data[100:]).encode())
    return prefix


FILES = {
    "part-1.csv": slice(0, 50),
    "sub/part-2.csv": slice(50, 100),
    "part-3.csv": slice(100, 150),
}


def create(sm: Any, model: str, source: str, output: str, **options: Any) -> str:
    name = unique("tj")
    transform_input: dict[str, Any] = {
        "DataSource": {
            "S3DataSource": {"S3DataType": options.pop("data_type", "S3Prefix"), "S3Uri": source}
        },
        "ContentType": options.pop("content_type", "text/csv"),
    }
    if "split" in options:
        transform_input["SplitType"] = options.pop("split")
    if "compression" in options:
        transform_input["CompressionType"] = options.pop("compression")
    transform_output: dict[str, Any] = {"S3OutputPath": output}
    if "accept" in options:
        transform_output["Accept"] = options.pop("accept")
    if "assemble" in options:
        transform_output["AssembleWith"] = options.pop("assemble")
    sm.create_transform_job(
        TransformJobName=name,
        ModelName=model,
        TransformInput=transform_input,
        TransformOutput=transform_output,
        TransformResources={
            "InstanceType": "ml.m5.large",
            "InstanceCount": options.pop("instances", 1),
        },
        **options,
    )
    return name


def wait(sm: Any, name: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sm.describe_transform_job(TransformJobName=name)
        if described["TransformJobStatus"] in ("Completed", "Failed", "Stopped"):
            return described
        assert time.monotonic() < deadline, described
        time.sleep(0.1)


def wait_for_data_log(server: SabioServer, name: str, text: str, timeout: float = 30) -> None:
    """Wait until the job's data log has a line containing `text` (records are flowing)."""
    deadline = time.monotonic() + timeout
    logs = boto3.client("logs", endpoint_url=server.url)
    while True:
        try:
            found = logs.filter_log_events(
                logGroupName="/aws/sagemaker/TransformJobs", logStreamNamePrefix=f"{name}/"
            )
        except logs.exceptions.ResourceNotFoundException:
            found = {"events": []}
        if any(text in event["message"] for event in found["events"]):
            return
        assert time.monotonic() < deadline, f"{text!r} never appeared in the data log of {name}"
        time.sleep(0.1)


def exists(server: SabioServer, uri: str) -> bool:
    return LocalArtifactStore(server.home / "artifacts").stat(parse(uri)) is not None


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


def test_a_failing_record_fails_its_file_only(
    server: SabioServer, sm: Any, models: dict[str, str]
) -> None:
    prefix = f"s3://data/{unique('bad')}"
    bad = IRIS.data[:40].copy()
    bad[28, 2] = -999  # line 29
    put_bytes(server, f"{prefix}/a-good.csv", csv_text(IRIS.data[:30]).encode())
    put_bytes(server, f"{prefix}/b-bad.csv", ("\n" + csv_text(bad)).encode())  # line 30 now
    put_bytes(server, f"{prefix}/c-good.csv", csv_text(IRIS.data[30:60]).encode())
    output = f"s3://results/{unique('bad')}"
    name = create(
        sm,
        models["custom"],
        f"{prefix}/",
        output,
        split="Line",
        accept="text/csv",
        BatchStrategy="MultiRecord",
        ModelClientConfig={"InvocationsMaxRetries": 1, "InvocationsTimeoutInSeconds": 30},
    )
    described = sm.get_waiter("transform_job_completed_or_stopped")
    with pytest.raises(Exception, match="Failed"):
        described.wait(TransformJobName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
    described = sm.describe_transform_job(TransformJobName=name)
    assert described["TransformJobStatus"] == "Failed"
    reason = described["FailureReason"]
    assert reason.startswith(f"ClientError: {prefix}/b-bad.csv: line 30: the model answered 500")
    assert "marker value -999" in reason
    logs = boto3.client("logs", endpoint_url=server.url)
    found = logs.filter_log_events(
        logGroupName="/aws/sagemaker/TransformJobs",
        logStreamNamePrefix=f"{name}/",
        filterPattern='"marker value -999"',
    )
    streams = {event["logStreamName"] for event in found["events"]}
    data_logs = {s for s in streams if s.endswith("/data-log")}
    workers = streams - data_logs
    assert len(data_logs) == 1, streams  # what happened to each object
    assert len(workers) == 1, streams  # the worker's own traceback
    assert workers.pop().startswith(f"{name}/algo-1-")
    assert "No output was written for this object." in reason
    assert not exists(server, f"{output}/b-bad.csv.out")
    good = read_object(server, f"{output}/a-good.csv.out").decode().splitlines()
    assert [int(v) for v in good] == predictions(IRIS.data[:30])
    assert exists(server, f"{output}/c-good.csv.out")


def test_a_record_that_crashes_the_model_fails_its_file_only(
    server: SabioServer, sm: Any, models: dict[str, str]
) -> None:
    prefix = f"s3://data/{unique('dies')}"
    rows = IRIS.data[:10].copy()
    rows[4, 0] = -998
    put_bytes(server, f"{prefix}/a.csv", csv_text(rows).encode())
    put_bytes(server, f"{prefix}/b.csv", csv_text(IRIS.data[:10]).encode())
    output = f"s3://results/{unique('dies')}"
    name = create(
        sm,
        models["custom"],
        f"{prefix}/",
        output,
        split="Line",
        accept="text/csv",
        BatchStrategy="SingleRecord",
        ModelClientConfig={"InvocationsMaxRetries": 0},
    )
    described = wait(sm, name, timeout=120)  # three workers start, one after the other
    assert described["TransformJobStatus"] == "Failed"
    # The worker is replaced once; the record crashes the replacement too, so it is the cause.
    assert described["FailureReason"] == (
        f"ClientError: {prefix}/a.csv: line 5: the model worker exited while transforming it "
        "(algo-1 with code 3, then algo-1 with code 3). No output was written for this object."
    )
    assert not exists(server, f"{output}/a.csv.out")
    good = read_object(server, f"{output}/b.csv.out").decode().splitlines()
    assert [int(v) for v in good] == predictions(IRIS.data[:10])


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


def test_stop_a_running_job(server: SabioServer, sm: Any, models: dict[str, str]) -> None:
    prefix = f"s3://data/{unique('slow')}"
    put_bytes(server, f"{prefix}/slow.csv", csv_text(IRIS.data[:100]).encode())
    output = f"s3://results/{unique('slow')}"
    name = create(
        sm,
        models["custom"],
        f"{prefix}/",
        output,
        split="Line",
        accept="text/csv",
        BatchStrategy="SingleRecord",
        Environment={"PREDICT_SLEEP": "0.2"},
    )
    wait_for_data_log(server, name, "Transforming 1 object")
    time.sleep(0.5)
    sm.stop_transform_job(TransformJobName=name)
    assert sm.describe_transform_job(TransformJobName=name)["TransformJobStatus"] in (
        "Stopping",
        "Stopped",
    )
    described = wait(sm, name, timeout=30)
    assert described["TransformJobStatus"] == "Stopped"
    assert not exists(server, f"{output}/slow.csv.out")
    with pytest.raises(ClientError, match="is Stopped and cannot be stopped"):
        sm.stop_transform_job(TransformJobName=name)
    sm.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 5}
    )
    summaries = sm.list_transform_jobs(NameContains=name)["TransformJobSummaries"]
    assert [(s["TransformJobName"], s["TransformJobStatus"]) for s in summaries] == [
        (name, "Stopped")
    ]


def test_a_missing_input_fails_the_job(server: SabioServer, sm: Any, models: dict[str, str]):
    name = create(sm, models["default"], "s3://data/nothing-here/", "s3://results/none")
    described = wait(sm, name)
    assert described["TransformJobStatus"] == "Failed"
    assert described["FailureReason"] == (
        "ClientError: No objects found under s3://data/nothing-here/ (TransformInput S3Prefix)."
    )


def test_a_job_cut_off_by_a_restart_runs_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    first = SabioServer(home)
    first.start()
    archive = model_archive(tmp_path / "custom.tar.gz", {"code/inference.py": INFERENCE})
    store_archive(first, archive, "restart.tgz")
    sm = boto3.client("sagemaker", endpoint_url=first.url)
    sm.create_model(
        ModelName="restart",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataUrl": "s3://models/restart.tgz"},
    )
    put_bytes(first, "s3://data/restart/iris.csv", csv_text(IRIS.data[:40]).encode())
    name = create(
        sm,
        "restart",
        "s3://data/restart/",
        "s3://results/restart",
        split="Line",
        accept="text/csv",
        BatchStrategy="SingleRecord",
        Environment={"PREDICT_SLEEP": "0.05"},
    )
    wait_for_data_log(first, name, "Transforming 1 object", timeout=90)
    stopping = time.monotonic()
    assert first.stop() == 0
    assert time.monotonic() - stopping < 15
    second = SabioServer(home)
    second.port, second.url = first.port, first.url
    second.start()
    try:
        described = wait(sm, name)
        assert described["TransformJobStatus"] == "Completed", described
        result = read_object(second, "s3://results/restart/iris.csv.out").decode().splitlines()
        assert [int(v) for v in result] == predictions(IRIS.data[:40])
    finally:
        second.stop()
