"""Batch transform surviving lost processes: a model worker killed mid-job is replaced and its
requests retried, and a server killed mid-job resumes it without redoing finished objects."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from support.deploy import create_model, store_archive, unique
from support.models import model_archive
from support.server import SabioServer
from support.training import put_bytes, read_object
from transform.jobs import (
    IRIS,
    create,
    csv_text,
    predictions,
    wait,
    wait_for_data_log,
)

INFERENCE = """\
import os, time
import joblib
import numpy as np

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def input_fn(body, content_type):
    text = body.decode() if isinstance(body, bytes) else body
    rows = [[float(v) for v in line.split(",")] for line in text.splitlines() if line.strip()]
    return np.asarray(rows, dtype=float).reshape(-1, 4)

def predict_fn(data, model):
    open(os.path.join(os.environ["PID_DIR"], str(os.getpid())), "a").close()
    time.sleep(float(os.environ.get("PREDICT_SLEEP", "0")))
    return model.predict(data)

def output_fn(prediction, accept):
    return "".join(f"{int(p)}\\n" for p in prediction), "text/csv"
"""


PARTS = {"a.csv": IRIS.data[:20], "b.csv": IRIS.data[20:40], "c.csv": IRIS.data[40:60]}


def make_model(server: SabioServer, sm: Any, folder: Path) -> str:
    archive = model_archive(folder / "pids.tar.gz", {"code/inference.py": INFERENCE})
    uri = store_archive(server, archive, f"{unique('pids')}.tgz")
    return create_model(sm, uri, "iris-pids")


def wait_for_pids(folder: Path, count: int, timeout: float = 120) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(pids := sorted(int(p.name) for p in folder.iterdir())) < count:
        assert time.monotonic() < deadline, f"fewer than {count} model workers served requests"
        time.sleep(0.05)
    return pids


def test_a_killed_worker_is_replaced_and_its_requests_retried(
    server: SabioServer, tmp_path: Path
) -> None:
    sm = boto3.client("sagemaker", endpoint_url=server.url)
    model = make_model(server, sm, tmp_path)
    pids = tmp_path / "pids"
    pids.mkdir()
    prefix = f"s3://data/{unique('kill')}"
    put_bytes(server, f"{prefix}/a.csv", csv_text(IRIS.data[:60]).encode())
    put_bytes(server, f"{prefix}/b.csv", csv_text(IRIS.data[60:90]).encode())
    output = f"s3://results/{unique('kill')}"
    name = create(
        sm,
        model,
        f"{prefix}/",
        output,
        split="Line",
        accept="text/csv",
        assemble="Line",
        BatchStrategy="SingleRecord",
        MaxConcurrentTransforms=2,
        ModelClientConfig={"InvocationsMaxRetries": 0},
        Environment={"PID_DIR": str(pids), "PREDICT_SLEEP": "0.05"},
    )
    (first,) = wait_for_pids(pids, 1)
    time.sleep(0.3)  # requests are in flight
    os.kill(first, signal.SIGKILL)
    described = wait(sm, name, timeout=120)
    assert described["TransformJobStatus"] == "Completed", described
    assert len(wait_for_pids(pids, 2)) == 2  # the replacement served the rest
    for relative, rows in (("a.csv", IRIS.data[:60]), ("b.csv", IRIS.data[60:90])):
        lines = read_object(server, f"{output}/{relative}.out").decode().splitlines()
        assert [int(v) for v in lines] == predictions(rows), relative


@pytest.mark.slow
def test_a_job_cut_off_by_a_killed_server_resumes_where_it_was(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    pids = tmp_path / "pids"
    pids.mkdir()
    first = SabioServer(home)
    first.start()
    try:
        sm = boto3.client("sagemaker", endpoint_url=first.url)
        model = make_model(first, sm, tmp_path)
        for relative, rows in PARTS.items():
            put_bytes(first, f"s3://data/resume/{relative}", csv_text(rows).encode())
        name = create(
            sm,
            model,
            "s3://data/resume/",
            "s3://results/resume",
            split="Line",
            accept="text/csv",
            BatchStrategy="SingleRecord",
            Environment={"PID_DIR": str(pids), "PREDICT_SLEEP": "0.1"},
        )
        wait_for_data_log(first, name, "a.csv: 20 record(s)", timeout=120)
        outputs = home / "artifacts" / "results" / "resume"
        written = (outputs / "a.csv.out").stat().st_mtime_ns
        assert not (outputs / "c.csv.out").exists()
    finally:
        assert first.process is not None
        first.process.kill()  # no shutdown: the job is cut off where it is
        first.process.wait()
    second = SabioServer(home)
    second.port, second.url = first.port, first.url
    second.start()
    try:
        described = wait(sm, name, timeout=120)
        assert described["TransformJobStatus"] == "Completed", described
        assert (outputs / "a.csv.out").stat().st_mtime_ns == written  # not transformed again
        wait_for_data_log(second, name, "a.csv: already transformed before the restart")
        for relative, rows in PARTS.items():
            lines = read_object(second, f"s3://results/resume/{relative}.out").decode()
            assert [int(v) for v in lines.splitlines()] == predictions(rows), relative
    finally:
        second.stop()
