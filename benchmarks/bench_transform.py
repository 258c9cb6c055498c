"""Benchmark: batch transform of a large CSV against the same work in one plain Python process.

Writes a CSV of `--rows` rows and 20 features (1,000,000 by default), trains a scikit-learn
LogisticRegression, then in one run:
- Sabio: CreateTransformJob with 2 instances (SplitType Line, MultiRecord, 6 MB mini-batches,
  text/csv in and out, framework defaults, no inference.py), timed from the create call to
  `Completed` (worker start-up included), sampling the resident memory of the server and all
  its descendants (the model workers) every 50 ms;
- plain Python: a fresh interpreter that runs `pandas.read_csv`, `model.predict` and writes
  the predictions, timed from start to exit (interpreter start-up and imports included).
The two alternate `--repeat` times (3 by default) so that load from elsewhere on the machine
hits both alike; medians are reported. Checks that both give the same predictions, and writes
the figures to docs/benchmarks.md (section "Batch transform") unless --no-write is given.

    .venv/bin/python benchmarks/bench_transform.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import boto3
import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

from harness import machine, sabio_server, tree_sum, write_section

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/Bench"
FEATURES = 20
PLAIN = """\
import sys
import joblib
import pandas as pd

model = joblib.load(sys.argv[1])
frame = pd.read_csv(sys.argv[2], header=None)
predictions = model.predict(frame.to_numpy())
pd.Series(predictions).to_csv(sys.argv[3], index=False, header=False)
"""


def write_data(path: Path, rows: int) -> None:
    """A CSV of `rows` rows of 20 features, 4 decimals each (about 160 MB per million rows)."""
    rng = np.random.default_rng(0)
    with path.open("w") as out:
        for start in range(0, rows, 100_000):
            block = rng.normal(size=(min(100_000, rows - start), FEATURES))
            np.savetxt(out, block, fmt="%.4f", delimiter=",")


def train(path: Path) -> Path:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20_000, FEATURES))
    y = (x @ rng.normal(size=FEATURES) > 0).astype(int)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    joblib.dump(model, path)
    return path


def archive(model: Path, path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(model, arcname="model.joblib")
    return path


def tree_rss(root: int) -> int:
    """Resident bytes of a process and all its descendants."""
    page = os.sysconf("SC_PAGE_SIZE")

    def resident(proc: str, _: list[str]) -> float:
        return int(Path(proc, "statm").read_text().split()[1]) * page

    return int(tree_sum(root, resident))


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and of its children that have exited (the workers)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def plain_peak(command: list[str]) -> tuple[float, int, float]:
    """Run a command; its wall time, peak resident memory and CPU time (from the kernel)."""
    started = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    assert os.waitstatus_to_exitcode(status) == 0
    process.returncode = 0
    return elapsed, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--concurrency", type=int, default=0, help="MaxConcurrentTransforms (default: the model's)"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    with sabio_server() as server:
        home = server.home
        data = home / "data.csv"
        write_data(data, args.rows)
        size_mb = data.stat().st_size / 1e6
        model = train(home / "model.joblib")
        server.copy(archive(model, home / "model.tar.gz"), "s3://bench/model/model.tar.gz")
        server.copy(data, "s3://bench/input/data.csv")
        sm = boto3.client("sagemaker")
        logs = boto3.client("logs")
        sm.create_model(
            ModelName="logreg",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://bench/model/model.tar.gz"},
        )
        pid = server.pid()
        idle = tree_rss(pid)
        script = home / "plain.py"
        script.write_text(PLAIN)
        plain_output = home / "plain.out"
        sabio_runs: list[float] = []
        startups: list[float] = []
        plain_runs: list[float] = []
        sabio_cpu: list[float] = []
        plain_cpu: list[float] = []
        peak = plain_rss = 0
        # Interleaved, so that load from elsewhere on the machine hits both sides alike.
        for index in range(args.repeat):
            name = f"bench-{index}"
            sampler = Sampler(pid)
            sampler.start()
            created = time.time()
            cpu_before = cpu_seconds(pid)
            started = time.perf_counter()
            sm.create_transform_job(
                TransformJobName=name,
                ModelName="logreg",
                TransformInput={
                    "DataSource": {
                        "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bench/input/"}
                    },
                    "ContentType": "text/csv",
                    "SplitType": "Line",
                },
                BatchStrategy="MultiRecord",
                **({"MaxConcurrentTransforms": args.concurrency} if args.concurrency else {}),
                TransformOutput={
                    "S3OutputPath": f"s3://bench/output/{name}",
                    "Accept": "text/csv",
                    "AssembleWith": "Line",
                },
                TransformResources={
                    "InstanceType": "ml.m5.large",
                    "InstanceCount": args.instances,
                },
            )
            while True:
                described = sm.describe_transform_job(TransformJobName=name)
                if described["TransformJobStatus"] != "InProgress":
                    break
                time.sleep(0.05)
            sabio_runs.append(time.perf_counter() - started)
            time.sleep(0.5)  # the stopped workers are reaped and counted
            sabio_cpu.append(cpu_seconds(pid) - cpu_before)
            sampler.done.set()
            sampler.join()
            peak = max(peak, sampler.peak)
            assert described["TransformJobStatus"] == "Completed", described
            first = logs.filter_log_events(
                logGroupName="/aws/sagemaker/TransformJobs",
                logStreamNamePrefix=f"{name}/",
                filterPattern='"Transforming"',
            )["events"][0]["timestamp"]
            startups.append(first / 1000 - created)
            output = home / "artifacts" / "bench" / "output" / name / "data.csv.out"
            sabio_predictions = np.loadtxt(output, dtype=int)

            elapsed, rss, cpu = plain_peak(
                [sys.executable, str(script), str(model), str(data), str(plain_output)]
            )
            plain_runs.append(elapsed)
            plain_cpu.append(cpu)
            plain_rss = max(plain_rss, rss)
            assert np.array_equal(sabio_predictions, np.loadtxt(plain_output, dtype=int))
        effective = (
            f"BatchStrategy {described['BatchStrategy']}, MaxPayloadInMB "
            f"{described['MaxPayloadInMB']}, MaxConcurrentTransforms "
            f"{described['MaxConcurrentTransforms']} per instance"
        )

    sabio, plain = statistics.median(sabio_runs), statistics.median(plain_runs)
    startup = statistics.median(startups)
    ratio = sabio / plain
    runs = ", ".join(f"{s:.2f}/{p:.2f}" for s, p in zip(sabio_runs, plain_runs, strict=True))
    lines = [
        f"Measured {datetime.date.today()} on {machine()} with "
        f"`benchmarks/bench_transform.py --rows {args.rows} --repeat {args.repeat}`.",
        f"A {args.rows:,}-row, {FEATURES}-feature CSV ({size_mb:.0f} MB) scored by a "
        "scikit-learn LogisticRegression (framework defaults, text/csv in and out). "
        f"Sabio: {args.instances} instances of ml.m5.large, SplitType Line, {effective}; "
        "timed from CreateTransformJob to Completed, worker start-up included. Plain: one "
        "fresh Python process running pandas.read_csv, predict and to_csv, start-up and imports "
        "included. Both outputs are checked to be identical. The two run alternately "
        f"{args.repeat} times; the table has medians. Target: at most 1.5x. Wall times depend "
        "on what else the machine runs: Sabio needs both cores (two workers), the plain "
        "process one.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| Sabio batch transform | {sabio:.2f} s |",
        f"| of which: CreateTransformJob -> workers up, first request | {startup:.2f} s |",
        f"| plain Python process (pandas) | {plain:.2f} s |",
        f"| ratio | {ratio:.2f}x |",
        f"| every run, Sabio/plain | {runs} s |",
        f"| CPU time, Sabio (server + workers) / plain | {statistics.median(sabio_cpu):.2f} s / "
        f"{statistics.median(plain_cpu):.2f} s |",
        f"| Sabio peak memory (server + workers, RSS sampled every 50 ms) | "
        f"{peak / 2**20:.0f} MiB (idle server {idle / 2**20:.0f} MiB) |",
        f"| plain process peak memory (max RSS) | {plain_rss / 2**20:.0f} MiB |",
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section("transform", "Batch transform: a large CSV against plain pandas", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
