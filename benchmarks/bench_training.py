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
import statistics
import tarfile
import time

import boto3

from harness import machine, sabio_server, write_section

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

    to_script: list[float] = []
    total: list[float] = []
    with sabio_server() as server:
        home = server.home
        archive = home / "sourcedir.tar.gz"
        archive.write_bytes(sourcedir())
        server.copy(archive, "s3://bench/code/sourcedir.tar.gz")
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
        write_section(
            "training",
            "Training jobs: start-up and overhead",
            [
                f"Measured {datetime.date.today().isoformat()} on {machine()} with "
                f"`benchmarks/bench_training.py --jobs {args.jobs}`.",
                "A script-mode job on the scikit-learn image (environment cached) whose script "
                "only records when it started; the client polls DescribeTrainingJob every 10 ms. "
                "Targets: script running within 0.5 s, total overhead under 2 s.",
                "",
                *table,
            ],
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
