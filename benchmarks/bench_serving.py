"""Benchmark: InvokeEndpoint through Sabio's router against MLServer, BentoML, MLflow and a
minimal in-process Starlette app (the floor), side by side in one run.

Each server serves the same scikit-learn LogisticRegression and RandomForest (see
`serving_peers.py`); `wrk` drives it with JSON bodies of 1 and 100 rows over 1 and 16
keep-alive connections, first with one worker per server, then with two. Reported per run:
req/s, p50 and p99 latency, the server's CPU per request (CPU seconds of its whole process tree
over the requests served: the steadiest figure on a shared machine) and wrk's own CPU per
request; and each server's cold start (launch, or for Sabio CreateEndpoint with its
environment cached, to the first 200). Medians over `--repeat` runs. Writes a section of
docs/benchmarks.md unless --no-write is given.

    .venv/bin/python benchmarks/bench_serving.py [--duration 8] [--repeat 3]
    .venv/bin/python benchmarks/bench_serving.py --duration 1 --repeat 1   # smoke run

Peers are installed once, each in its own uv venv under --cache (default ~/.cache/sabio-bench).
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3

import serving_peers as peers
from harness import free_port, machine, sabio_server, tree_sum, write_section
from serving_report import CLIENTS, ROWS, Run, tables, targets

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/Bench"
MODELS = ("logreg", "forest")
SERVERS = ("floor", "sabio", "mlserver", "mlserver-pw0", "mlflow", "bentoml")
TICK = os.sysconf("SC_CLK_TCK")
LUA = """\
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
"""


# Process-tree CPU


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of `root` and all its live descendants."""
    return tree_sum(root, lambda _, fields: (int(fields[11]) + int(fields[12])) / TICK)


# wrk


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, body: Path, clients: int, seconds: float, server_pid: int) -> Run:
    script = body.with_suffix(".lua")
    script.write_text(LUA)
    argv = ["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--latency", "-s", str(script), url]
    before = tree_cpu(server_pid)
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, text=True, env={**os.environ, "WRK_BODY": str(body)}
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    server_cpu = tree_cpu(server_pid) - before
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {output}")
    if "Non-2xx" in output or re.search(r"Socket errors: .*[1-9]", output):
        raise RuntimeError(f"{url} answered with errors:\n{output}")
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    wrk_cpu = usage.ru_utime + usage.ru_stime
    per = 1000 / max(requests, 1)
    return Run(rps, p50, p99, server_cpu * per, wrk_cpu * per)


def median_run(runs: list[Run]) -> Run:
    return Run(*(statistics.median(getattr(r, f) for r in runs) for f in Run.__dataclass_fields__))


# Servers


def post_ok(port: int, path: str, body: bytes) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        connection.close()
        return response.status == 200
    except OSError:
        return False


def wait_ok(port: int, path: str, body: bytes, started: float, limit: float = 120) -> float:
    """Poll until the first 200; seconds since `started`."""
    while not post_ok(port, path, body):
        if time.perf_counter() - started > limit:
            raise RuntimeError(f"no 200 from port {port}{path} within {limit:g} s")
        time.sleep(0.01)
    return time.perf_counter() - started


@contextmanager
def launched(
    launch: peers.Launch, port: int, sample: bytes, log: Path
) -> Iterator[tuple[int, float]]:
    """Start a server in its own process group; yields its pid and its cold start."""
    with log.open("ab") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            launch.argv,
            cwd=launch.cwd,
            env={**os.environ, **launch.env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            try:
                cold = wait_ok(port, launch.path, sample, started)
            except RuntimeError:
                raise RuntimeError(
                    f"{launch.argv[:3]} did not start: {log.read_text()[-2000:]}"
                ) from None
            yield process.pid, cold
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def sabio_archive(work: Path, name: str) -> Path:
    archive = work / f"{name}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(work / "sabio" / name / "model.joblib", "model.joblib")
    return archive


def create_endpoint(sm: object, name: str, model: str, count: int) -> None:
    sm.create_endpoint_config(  # type: ignore[attr-defined]
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": model,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": count,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)  # type: ignore[attr-defined]


# The run


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.results: dict[tuple[str, str, int, int, int], Run] = {}
        self.cold: dict[str, float] = {}
        from sklearn.datasets import make_classification

        x, _ = make_classification(n_samples=20000, n_features=20, random_state=0)
        self.bodies: dict[tuple[str, int], Path] = {}
        self.samples: dict[tuple[str, int], bytes] = {}
        formats = {
            "json": peers.json_rows,
            "v2": peers.v2_rows,
            "mlflow": peers.mlflow_rows,
            "bento": peers.bento_rows,
        }
        for kind, encode in formats.items():
            for rows in ROWS:
                data = encode(x[:rows].tolist())
                path = work / f"body-{kind}-{rows}.json"
                path.write_bytes(data)
                self.bodies[kind, rows], self.samples[kind, rows] = path, data

    def measure(
        self, server: str, model: str, workers: int, port: int, path: str, pid: int, kind: str
    ) -> None:
        duration, repeat = self.args.duration, self.args.repeat
        url = f"http://127.0.0.1:{port}{path}"
        wrk(url, self.bodies[kind, 1], 16, min(1.0, duration), pid)  # warm-up
        for rows in ROWS:
            for clients in CLIENTS:
                runs = [
                    wrk(url, self.bodies[kind, rows], clients, duration, pid) for _ in range(repeat)
                ]
                result = self.results[server, model, workers, rows, clients] = median_run(runs)
                print(
                    f"{server:13} {model:7} w{workers} {rows:3} rows {clients:2} clients: "
                    f"{result.rps:8.0f} req/s p50 {result.p50_ms:7.3f} ms "
                    f"p99 {result.p99_ms:7.3f} ms cpu {result.server_cpu_ms:.3f} ms/req",
                    flush=True,
                )

    def peer(self, server: str, model: str, workers: int) -> None:
        cache = self.args.cache
        flavour = server.split("-")[0]
        python = peers.venv_python(cache / "peers", flavour)
        models = cache / "models" / flavour
        port = free_port()
        if server == "floor":
            launch = peers.floor(
                self.work, self.work / "sabio" / model / "model.joblib", port, workers
            )
            kind = "json"
        elif flavour == "mlserver":
            parallel = 0 if server == "mlserver-pw0" else 1
            if workers > 1 and server == "mlserver-pw0":
                return
            launch = peers.mlserver(python, models, model, port, workers, parallel)
            kind = "v2"
        elif server == "mlflow":
            launch = peers.mlflow(python, models, model, port, workers)
            kind = "mlflow"
        else:
            launch = peers.bentoml(python, models, model, port, workers)
            kind = "bento"
        log = self.work / f"{server}-{model}-{workers}.log"
        with launched(launch, port, self.samples[kind, 1], log) as (pid, cold):
            if model == "logreg" and workers == 1:
                self.cold[server] = cold
            self.measure(server, model, workers, port, launch.path, pid, kind)

    def sabio(self) -> None:
        with sabio_server() as server:
            pid = server.pid()
            sm = boto3.client("sagemaker")
            for model in self.args.models:
                server.copy(sabio_archive(self.work, model), f"s3://bench/{model}/model.tar.gz")
                sm.create_model(
                    ModelName=model,
                    ExecutionRoleArn=ROLE,
                    PrimaryContainer={
                        "Image": IMAGE,
                        "ModelDataUrl": f"s3://bench/{model}/model.tar.gz",
                    },
                )
                # The first endpoint builds the environment and extracts the model.
                create_endpoint(sm, f"{model}-warm", model, 1)
                path = f"/endpoints/{model}-warm/invocations"
                wait_ok(server.port, path, self.samples["json", 1], time.perf_counter())
                sm.delete_endpoint(EndpointName=f"{model}-warm")
                for workers in self.args.workers:
                    name = f"{model}-{workers}"
                    started = time.perf_counter()
                    create_endpoint(sm, name, model, workers)
                    path = f"/endpoints/{name}/invocations"
                    cold = wait_ok(server.port, path, self.samples["json", 1], started)
                    if model == "logreg" and workers == 1:
                        self.cold["sabio"] = cold
                    self.measure("sabio", model, workers, server.port, path, pid, "json")
                    sm.delete_endpoint(EndpointName=name)

    def run(self) -> None:
        for server in self.args.servers:
            if server == "sabio":
                self.sabio()
                continue
            for model in self.args.models:
                for workers in self.args.workers:
                    self.peer(server, model, workers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (medians)")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--workers", nargs="+", type=int, choices=(1, 2), default=[1, 2])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "sabio-bench")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        if os.geteuid() != 0:
            parser.error("wrk is needed: apt-get install wrk")
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)

    work = Path(tempfile.mkdtemp(prefix="sabio-bench-serving-"))
    peers.train(Path(sys.executable), work / "sabio", "sabio")
    for flavour in sorted(
        {s.split("-")[0] for s in args.servers} & {"mlserver", "mlflow", "bentoml"}
    ):
        python = peers.install(args.cache / "peers", flavour, print)
        models = args.cache / "models" / flavour
        if not (models / "forest" / "model.joblib").exists():
            peers.train(python, models, flavour)
    bench = Bench(args, work)
    bench.run()

    table_lines = tables(bench)
    target_lines = targets(bench)
    print("\n".join([*target_lines, "", *table_lines]))
    if not args.no_write:
        write_section(
            "serving",
            "Serving: InvokeEndpoint against MLServer, BentoML, MLflow and a floor",
            [
                f"Measured {datetime.date.today().isoformat()} on {machine()} with "
                f"`benchmarks/bench_serving.py --duration {args.duration:g} "
                f"--repeat {args.repeat}` (medians of the repeats).",
                "wrk (one thread) on the same machine, JSON bodies, keep-alive connections. "
                "Sabio is measured through its router (`POST /endpoints/{name}/invocations` on "
                "the server, forwarded to the model worker over a Unix socket); its server "
                "CPU counts the server and its workers. Each peer in its fastest configuration "
                "that we know (MLServer's V2 protocol, MLflow's `inputs`, a BentoML `async` "
                "API); the floor is a minimal Starlette app calling `predict` in-process on "
                "uvicorn with httptools and uvloop. Server CPU per request is the steadiest "
                "figure when other work shares the machine; req/s and latency move with it. "
                "Sabio's workers run in the cgroup of their instance type (ml.m5.large, 2 "
                "CPUs) and the others in none: on a busy machine the kernel gives that group "
                "one share among all runnable processes, so measure on a quiet one.",
                "",
                *target_lines,
                "",
                *table_lines,
            ],
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
