"""Benchmark: a serverless endpoint's cold start, from zero workers to the first response.

Deploys a scikit-learn LogisticRegression (iris, with an `inference.py`) as a serverless
variant (1024 MB, MaxConcurrency 2) on a server whose serverless workers stop after one idle
second. `--repeat` times (10 by default) it waits until the variant has scaled to zero, then
times one InvokeEndpoint from the call to the parsed answer: the worker is forked from the
pre-warmed parent, loads the model and answers. For comparison it then times warm invocations,
and, unless --no-spawn is given, the same cold starts on a server with
SABIO_PREWARM=false (a fresh interpreter per cold start). Medians and maxima are
reported, with ModelSetupTime as GetMetricStatistics reads it, and written to
docs/benchmarks.md (section "Serverless cold starts") unless --no-write is given.

    .venv/bin/python benchmarks/bench_serverless.py [--repeat 10] [--no-spawn] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from harness import Server, cpu_pressure, machine, sabio_server, tar_gz, write_section

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/Bench"
INFERENCE = """\
import json, os
import joblib
import numpy as np

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def input_fn(body, content_type):
    return np.asarray(json.loads(body), dtype=float)

def predict_fn(data, model):
    return model.predict(data)

def output_fn(prediction, accept):
    return json.dumps({"predictions": prediction.tolist()}), "application/json"
"""
BODY = json.dumps([[5.1, 3.5, 1.4, 0.2]])


def model_archive(path: Path) -> Path:
    iris = load_iris()
    buffer = io.BytesIO()
    joblib.dump(LogisticRegression(max_iter=500).fit(iris.data, iris.target), buffer)
    return tar_gz(
        path, {"model.joblib": buffer.getvalue(), "code/inference.py": INFERENCE.encode()}
    )


def workers(server: Server, name: str) -> int:
    url = f"http://127.0.0.1:{server.port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("sabio_variant_instances{") and f'endpoint="{name}"' in line:
                return int(line.rsplit(" ", 1)[1])
    return 0


def deploy(server: Server, archive: Path) -> str:
    sm = boto3.client("sagemaker")
    server.copy(archive, "s3://bench/serverless/model.tar.gz")
    name = "bench-serverless"
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://bench/serverless/model.tar.gz"},
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 2},
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 1500}
    )
    return name


def invoke(runtime: Any, name: str) -> float:
    started = time.perf_counter()
    response = runtime.invoke_endpoint(EndpointName=name, ContentType="application/json", Body=BODY)
    json.loads(response["Body"].read())
    return time.perf_counter() - started


def cold_starts(
    archive: Path, repeat: int, prewarm: bool
) -> tuple[list[float], list[float], list[float]]:
    """Cold-start latencies (s), ModelSetupTime samples (µs) as CloudWatch reports them, and
    (with the pre-warmed parent) warm invocation latencies (s)."""
    os.environ["SABIO_SERVERLESS_IDLE_SECONDS"] = "1"
    os.environ["SABIO_PREWARM"] = "true" if prewarm else "false"
    with sabio_server() as server:
        name = deploy(server, archive)
        runtime = boto3.client("sagemaker-runtime")
        times = []
        for _ in range(repeat):
            deadline = time.monotonic() + 30
            while workers(server, name) and time.monotonic() < deadline:
                time.sleep(0.1)
            times.append(invoke(runtime, name))
        stats = boto3.client("cloudwatch").get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName="ModelSetupTime",
            Dimensions=[
                {"Name": "EndpointName", "Value": name},
                {"Name": "VariantName", "Value": "AllTraffic"},
            ],
            StartTime=datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1),
            EndTime=datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=1),
            Period=60,
            Statistics=["Average", "SampleCount"],
        )
        setups = [p["Average"] for p in stats["Datapoints"] for _ in range(int(p["SampleCount"]))]
        warm = [invoke(runtime, name) for _ in range(200)] if prewarm else []
    return times, setups, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--no-spawn", action="store_true", help="skip the run without prewarm")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    archive = model_archive(Path(tempfile.mkdtemp(prefix="sabio-bench-")) / "model.tar.gz")
    rows = []
    runs = [("forked from the pre-warmed parent", True)]
    if not args.no_spawn:
        runs.append(("fresh interpreter (SABIO_PREWARM=false)", False))
    pressure, warm_median = "not measured", float("nan")
    for label, prewarm in runs:
        times, setups, warm = cold_starts(archive, args.repeat, prewarm)
        if prewarm:
            pressure, warm_median = cpu_pressure(), statistics.median(warm) * 1000
        median, worst = statistics.median(times) * 1000, max(times) * 1000
        setup = statistics.median(setups) / 1000 if setups else float("nan")
        print(f"{label}: cold start median {median:.0f} ms, max {worst:.0f} ms")
        rows.append(f"| {label} | {median:.0f} ms | {worst:.0f} ms | {setup:.0f} ms |")
    lines = [
        f"Measured {datetime.date.today().isoformat()} on {machine()}, with "
        "`benchmarks/bench_serverless.py`: a scikit-learn LogisticRegression (iris, with an "
        "`inference.py`) as a serverless variant (1024 MB). Each cold start is timed from the "
        "InvokeEndpoint call to the parsed answer, after the variant has scaled to zero; "
        f"{args.repeat} cold starts per row. ModelSetupTime is the median of the metric as "
        "GetMetricStatistics reports it (worker start to its first healthy ping).",
        "",
        f"Other work on the machine during the run: {pressure}. Warm invocations of the same "
        f"endpoint took {warm_median:.1f} ms (median of 200).",
        "",
        "| cold start | median | max | ModelSetupTime |",
        "|---|---|---|---|",
        *rows,
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section("serverless", "Serverless cold starts", lines)


if __name__ == "__main__":
    main()
