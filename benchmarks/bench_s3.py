"""Benchmark: throughput of the S3 gateway against the disk it writes to.

Starts a real Sabio server and moves one object of random bytes (200 MiB by default):
- upload: boto3 `upload_file` through the gateway (default TransferConfig: 8 MiB parts on 10
  threads, each part CRC32-checked and, over plain HTTP, SHA-256-signed) against copying the
  file directly into the artifact directory and fsyncing it, which is what the store does;
- download: boto3 `download_file` against copying the stored file to a new local file.
Each round runs all four; the medians are reported. Writes the figures to docs/benchmarks.md
(section "s3") unless --no-write is given.

    .venv/bin/python benchmarks/bench_s3.py [--size-mb 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from harness import machine, sabio_server, write_section

BUCKET = "bench-s3"
BLOCK = 1024 * 1024


def copy(source: Path, target: Path, *, sync: bool) -> None:
    with source.open("rb") as reader, target.open("wb") as writer:
        shutil.copyfileobj(reader, writer, BLOCK)
        if sync:
            writer.flush()
            os.fsync(writer.fileno())


def timed(action: Callable[..., object], *args: Any, **kwargs: Any) -> float:
    os.sync()  # start each measurement without dirty pages left by the one before
    started = time.perf_counter()
    action(*args, **kwargs)
    return time.perf_counter() - started


def cpu_pressure() -> str:
    """How much other processes competed for the CPU (Linux pressure stall information)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return "not measured"
    fields = dict(part.split("=") for part in line.split()[1:])
    return f"runnable tasks waited for a CPU {fields.get('avg60', '?')}% of the last minute"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sabio-bench-s3-"))
    source = work / "source.bin"
    with source.open("wb") as handle:
        for _ in range(args.size_mb):
            handle.write(os.urandom(BLOCK))
    size_mb = source.stat().st_size / BLOCK
    times: dict[str, list[float]] = {k: [] for k in ("write", "upload", "read", "download")}
    try:
        with sabio_server() as server:
            s3 = boto3.client("s3")
            s3.create_bucket(Bucket=BUCKET)
            bucket_dir = server.home / "artifacts" / BUCKET
            for round_number in range(args.rounds):
                direct = bucket_dir / f"direct-{round_number}.bin"
                key = f"gateway-{round_number}.bin"
                times["write"].append(timed(copy, source, direct, sync=True))
                times["upload"].append(timed(s3.upload_file, str(source), BUCKET, key))
                # New names each round: deleting a large file here makes the file system
                # discard its blocks, which would stall whatever is measured next.
                read, downloaded = work / f"read-{round_number}", work / f"down-{round_number}"
                times["read"].append(timed(copy, direct, read, sync=False))
                times["download"].append(timed(s3.download_file, BUCKET, key, str(downloaded)))
                assert downloaded.stat().st_size == source.stat().st_size
            shutil.rmtree(bucket_dir, ignore_errors=True)  # gigabytes the home would keep
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rates = {name: sorted(size_mb / t for t in values) for name, values in times.items()}
    rate = {name: statistics.median(values) for name, values in rates.items()}
    spread = {name: f"{values[0]:.0f}-{values[-1]:.0f}" for name, values in rates.items()}
    rows = [
        ("upload (`upload_file`) vs write + fsync", "write", "upload"),
        ("download (`download_file`) vs read + write", "read", "download"),
    ]
    for label, direct, gateway in rows:
        print(
            f"{label}: direct {rate[direct]:.0f} MB/s ({spread[direct]}), gateway "
            f"{rate[gateway]:.0f} MB/s ({spread[gateway]}): {rate[gateway] / rate[direct]:.0%}"
        )
    if not args.no_write:
        today = datetime.date.today().isoformat()
        lines = [
            f"Measured {today} on {machine()} with `benchmarks/bench_s3.py "
            f"--size-mb {args.size_mb} --rounds {args.rounds}`.",
            f"One object of {size_mb:.0f} MiB of random bytes; medians of {args.rounds} rounds "
            "(range in brackets). boto3 with its default TransferConfig (8 MiB parts on 10 "
            "threads; each part CRC32-checked and, over plain HTTP, SHA-256-signed; the server "
            "checks both and computes the MD5 ETag) shares the 2 cores with the server. Direct: "
            "the same file copied into the artifact directory and fsynced (as the store "
            "writes), then copied out to a new file. Target: 60% of direct.",
            "",
            f"Other work on the machine during the run: {cpu_pressure()}. The disk's speed "
            "varies with what was written before (the ranges), so compare ratios of one run. "
            "The upload is CPU-bound: boto3 hashes every byte twice (SHA-256, CRC32) and the "
            "server three times (the same two, and MD5 for the ETag); for 200 MiB that is about "
            "0.15 s and 0.45 s of CPU on these cores, besides moving the bytes.",
            "",
            "| transfer | direct on disk | through the gateway | ratio |",
            "|---|---|---|---|",
            *(
                f"| {label} | {rate[d]:.0f} MB/s ({spread[d]}) | {rate[g]:.0f} MB/s "
                f"({spread[g]}) | {rate[g] / rate[d]:.0%} |"
                for label, d, g in rows
            ),
        ]
        write_section("s3", "S3 gateway: upload and download throughput", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
