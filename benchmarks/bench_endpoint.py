"""Benchmark: CreateEndpoint-to-InService time, InvokeEndpoint latency, and the router's
overhead over calling the model worker directly.

Starts a real Sabio server, deploys a scikit-learn LogisticRegression (20 features, framework
defaults, no inference.py) and measures with sequential requests over keep-alive connections.
Writes the figures to docs/benchmarks.md (section "Endpoints") unless --no-write is given.

    .venv/bin/python benchmarks/bench_endpoint.py [--requests 3000] [--endpoints 5]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import http.client
import io
import json
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import joblib
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from harness import machine, percentile, sabio_server, tar_gz, write_section

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/Bench"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("worker")
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def model_archive(path: Path) -> Path:
    x, y = make_classification(n_samples=20000, n_features=20, random_state=0)
    buffer = io.BytesIO()
    joblib.dump(LogisticRegression(max_iter=1000).fit(x, y), buffer)
    return tar_gz(path, {"model.joblib": buffer.getvalue()})


def timed_posts(
    connection: http.client.HTTPConnection, path: str, body: bytes, count: int
) -> list[float]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        samples.append(time.perf_counter() - started)
        assert response.status == 200, response.status
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--endpoints", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--settle", type=float, default=5.0, help="seconds to wait after the first endpoint"
    )
    args = parser.parse_args()

    results: dict[str, Any] = {}
    with sabio_server() as server:
        home, port = server.home, server.port
        server.copy(model_archive(home / "model.tar.gz"), "s3://bench/logreg/model.tar.gz")
        sm = boto3.client("sagemaker")
        runtime = boto3.client("sagemaker-runtime")
        sm.create_model(
            ModelName="logreg",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://bench/logreg/model.tar.gz"},
        )
        sm.create_endpoint_config(
            EndpointConfigName="logreg",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "logreg",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
        )

        # CreateEndpoint -> InService and -> first 200 from InvokeEndpoint, environment and
        # model cache warm after the first one.
        row = json.dumps([[0.1 * i for i in range(20)]]).encode()
        in_service, first_answer = [], []
        for index in range(args.endpoints + 1):
            name = f"logreg-{index}"
            started = time.perf_counter()
            sm.create_endpoint(EndpointName=name, EndpointConfigName="logreg")
            while sm.describe_endpoint(EndpointName=name)["EndpointStatus"] != "InService":
                time.sleep(0.01)
            elapsed = time.perf_counter() - started
            runtime.invoke_endpoint(EndpointName=name, ContentType="application/json", Body=row)
            answered = time.perf_counter() - started
            if index:
                in_service.append(elapsed)
                first_answer.append(answered)
            else:
                results["first_in_service_s"] = elapsed
            if index < args.endpoints:
                sm.delete_endpoint(EndpointName=name)
                while name in {e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]}:
                    time.sleep(0.01)
            if index == 0:
                time.sleep(args.settle)  # the environment's pre-warmed parent starts meanwhile
        results["in_service_s"] = in_service
        results["first_answer_s"] = first_answer
        name = f"logreg-{args.endpoints}"

        # boto3 end to end, as users call it.
        boto_samples = []
        for _ in range(min(args.requests, 1000)):
            started = time.perf_counter()
            runtime.invoke_endpoint(EndpointName=name, ContentType="application/json", Body=row)[
                "Body"
            ].read()
            boto_samples.append(time.perf_counter() - started)
        results["boto3"] = boto_samples

        # Router vs direct: the same raw HTTP client, interleaved in rounds.
        digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:10]
        sockets = [
            p
            for p in sorted(Path(tempfile.gettempdir(), f"sabio-{digest}").glob("*.sock"))
            if not p.name.startswith("prewarm-")
        ]
        assert len(sockets) == 1, sockets
        via_server = http.client.HTTPConnection("127.0.0.1", port)
        direct = UnixHTTPConnection(str(sockets[0]))
        routed, straight = [], []
        rounds = 10
        for _ in range(rounds):
            routed += timed_posts(
                via_server, f"/endpoints/{name}/invocations", row, args.requests // rounds
            )
            straight += timed_posts(direct, "/invocations", row, args.requests // rounds)
        results["routed"], results["direct"] = routed, straight

    first = results["first_in_service_s"]
    warm = results["in_service_s"]
    answered = results["first_answer_s"]
    routed, straight, boto = results["routed"], results["direct"], results["boto3"]
    overhead = statistics.median(routed) - statistics.median(straight)

    def latency(label: str, samples: list[float]) -> str:
        median, p99 = statistics.median(samples) * 1000, percentile(samples, 0.99) * 1000
        return f"| {label} | {median:.3f} ms | {p99:.3f} ms |"

    table = [
        "| measure | median | p99 |",
        "|---|---|---|",
        f"| CreateEndpoint -> InService, first (model extracted) | {first:.2f} s | |",
        f"| CreateEndpoint -> InService, cached ({len(warm)} runs) "
        f"| {statistics.median(warm):.2f} s | max {max(warm):.2f} s |",
        f"| CreateEndpoint -> first 200 from InvokeEndpoint, cached ({len(answered)} runs) "
        f"| {statistics.median(answered):.2f} s | max {max(answered):.2f} s |",
        latency("InvokeEndpoint with boto3 (client included)", boto),
        latency("POST /endpoints/.../invocations through the server", routed),
        latency("POST /invocations on the worker's socket directly", straight),
        f"| router overhead (difference of medians) | {overhead * 1000:.3f} ms | |",
    ]
    print("\n".join(table))
    if not args.no_write:
        write_section(
            "endpoints",
            "Endpoints: deployment time and invocation latency",
            [
                f"Measured {datetime.date.today().isoformat()} on {machine()} with "
                f"`benchmarks/bench_endpoint.py --requests {args.requests} "
                f"--endpoints {args.endpoints}`.",
                "A scikit-learn LogisticRegression (20 features) served by the framework "
                "defaults; one JSON row per request, sequential requests over keep-alive "
                "connections, client on the same machine. Targets: InService within 3 s and the "
                "first 200 within 1 s with a cached environment (workers fork from the "
                "environment's pre-warmed parent); median router overhead under 1 ms.",
                "",
                *table,
            ],
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
