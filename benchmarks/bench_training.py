"""Benchmark: how fast a training job starts and how much a trivial job costs end to end.

Starts a real Sabio server, runs a script-mode job whose script records when it started, and
measures (with the environment already cached):
- CreateTrainingJob -> the user's script running (first line of the script executes);
- CreateTrainingJob -> Completed for a trivial job (total overhead, polling every 10 ms).
Writes the figures to docs/benchmarks.md (section "Training jobs") unless --no-write is given.

    .venv/bin/python benchmarks/bench_training.py [--jobs 10]
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import boto3

from bench_endpoint import ROOT, free_port, machine

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
SCRIPT = """\
import os, time
started = time.time()
with open(os.path.join(os.environ["SM_MODEL_DIR"], "started"), "w") as f:
    f.write(repr(started))
"""


def sourcedir() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = SCRIPT.encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="sabio-bench-"))
    port = free_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    log = (home / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "sabio", "server", "--port", str(port), "--home", str(home)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "SABIO_LOG_LEVEL": "warning"},
    )
    to_script: list[float] = []
    total: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        archive = home / "sourcedir.tar.gz"
        archive.write_bytes(sourcedir())
        subprocess.run(
            [
                sys.executable,
                "-m",
                "sabio",
                "s3",
                "cp",
                "--home",
                str(home),
                str(archive),
                "s3://bench/code/sourcedir.tar.gz",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        sm = boto3.client("sagemaker")
        hyperparameters = {
            "sagemaker_program": json.dumps("train.py"),
            "sagemaker_submit_directory": json.dumps("s3://bench/code/sourcedir.tar.gz"),
        }
        for index in range(args.jobs + 1):
            name = f"bench-{index}"
            created = time.time()
            sm.create_training_job(
                TrainingJobName=name,
                RoleArn="arn:aws:iam::123456789012:role/Bench",
                AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
                HyperParameters=hyperparameters,
                OutputDataConfig={"S3OutputPath": "s3://bench/output"},
                ResourceConfig={
                    "InstanceType": "ml.m5.large",
                    "InstanceCount": 1,
                    "VolumeSizeInGB": 1,
                },
                StoppingCondition={"MaxRuntimeInSeconds": 600},
            )
            while True:
                state = sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
                if state != "InProgress":
                    break
                time.sleep(0.01)
            finished = time.time()
            assert state == "Completed", state
            started = float(
                (home / "jobs" / "training" / name / "algo-1" / "model" / "started").read_text()
            )
            if index:  # the first job warms the caches
                to_script.append(started - created)
                total.append(finished - created)
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()

    table = [
        "| measure | median | max |",
        "|---|---|---|",
        f"| CreateTrainingJob -> user script running | {statistics.median(to_script):.3f} s "
        f"| {max(to_script):.3f} s |",
        f"| CreateTrainingJob -> Completed, trivial job | {statistics.median(total):.3f} s "
        f"| {max(total):.3f} s |",
    ]
    print("\n".join(table))
    if not args.no_write:
        write_section(table, args.jobs)
    return 0


def write_section(table: list[str], jobs: int) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start, end = "<!-- training:start -->", "<!-- training:end -->"
    section = "\n".join(
        [
            start,
            "## Training jobs: start-up and overhead",
            "",
            f"Measured {datetime.date.today().isoformat()} on {machine()} with "
            f"`benchmarks/bench_training.py --jobs {jobs}`.",
            "A script-mode job on the scikit-learn image (environment cached) whose script only "
            "records when it started; the client polls DescribeTrainingJob every 10 ms. Targets: "
            "script running within 0.5 s, total overhead under 2 s.",
            "",
            *table,
            end,
        ]
    )
    if start in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
