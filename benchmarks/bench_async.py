"""Benchmark: asynchronous inference throughput and end-to-end latency.

Deploys an async endpoint (a trivial echo model, `--instances` instances, `--concurrency`
MaxConcurrentInvocationsPerInstance) and keeps `--in-flight` requests (100 by default) in flight
from as many client threads: each sends InvokeEndpointAsync with an inline body and waits until
its result object is present, then sends the next. End-to-end latency runs from the call to the
moment the result object exists (its file is watched in the embedded artifact store, so the
watching adds no requests to the server). Sustained requests/s is answered requests over the
wall time of the run. Results go to docs/benchmarks.md (section "Asynchronous inference")
unless --no-write is given.

    .venv/bin/python benchmarks/bench_async.py [--requests 3000] [--in-flight 100] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import boto3

from harness import machine, percentile, sabio_server, tar_gz, write_section

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/Bench"
ECHO = """\
def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    return body, "application/json"
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    with sabio_server() as server, tempfile.TemporaryDirectory() as scratch:
        sm, s3 = boto3.client("sagemaker"), boto3.client("s3")
        runtime = boto3.client("sagemaker-runtime")
        s3.create_bucket(Bucket="bench")
        echo = {"code/inference.py": ECHO.encode()}
        server.copy(tar_gz(Path(scratch) / "echo.tar.gz", echo), "s3://bench/model/echo.tar.gz")
        sm.create_model(
            ModelName="echo",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://bench/model/echo.tar.gz"},
        )
        sm.create_endpoint_config(
            EndpointConfigName="echo",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "echo",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": args.instances,
                }
            ],
            AsyncInferenceConfig={
                "OutputConfig": {"S3OutputPath": "s3://bench/results"},
                "ClientConfig": {"MaxConcurrentInvocationsPerInstance": args.concurrency},
            },
        )
        sm.create_endpoint(EndpointName="echo", EndpointConfigName="echo")
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName="echo", WaiterConfig={"Delay": 0.5, "MaxAttempts": 600}
        )
        root = server.home / "artifacts"
        latencies: list[float] = []
        lock = threading.Lock()
        remaining = [args.requests]

        def client() -> None:
            while True:
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                started = time.perf_counter()
                response = runtime.invoke_endpoint_async(
                    EndpointName="echo", Body=json.dumps({"t": started}).encode()
                )
                bucket, _, key = response["OutputLocation"].removeprefix("s3://").partition("/")
                target = root / bucket / key
                while not target.exists():
                    time.sleep(0.005)
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)

        began = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.in_flight)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began

    rate = len(latencies) / wall
    ms = [v * 1000 for v in latencies]
    summary: dict[str, Any] = {
        "requests": len(latencies),
        "requests_per_second": round(rate, 1),
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(percentile(ms, 0.95), 1),
        "p99_ms": round(percentile(ms, 0.99), 1),
    }
    print(json.dumps(summary))
    if args.no_write:
        return
    write_section(
        "async",
        "Asynchronous inference",
        [
            f"Measured {datetime.date.today()} on {machine()}.",
            "",
            f"{len(latencies)} InvokeEndpointAsync requests (inline 20-byte bodies, an echo model, "
            f"{args.instances} instances, MaxConcurrentInvocationsPerInstance {args.concurrency}), "
            f"{args.in_flight} in flight at any time; latency is from the call until the result "
            "object exists.",
            "",
            "| requests/s | p50 | p95 | p99 |",
            "|---|---|---|---|",
            f"| {summary['requests_per_second']} | {summary['p50_ms']} ms | "
            f"{summary['p95_ms']} ms | {summary['p99_ms']} ms |",
            "",
            "Run it with `.venv/bin/python benchmarks/bench_async.py`.",
        ],
    )


if __name__ == "__main__":
    main()
