"""Batch transform jobs that do not complete: a failing or crashing record fails its file only,
a stop, a missing input, and a job cut off by a restart that runs again."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from support.deploy import ROLE, SKLEARN_IMAGE, store_archive, unique
from support.models import model_archive
from support.server import SabioServer
from support.training import put_bytes, read_object
from transform.jobs import (
    INFERENCE,
    IRIS,
    create,
    csv_text,
    exists,
    predictions,
    wait,
    wait_for_data_log,
)


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
