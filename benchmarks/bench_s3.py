"""Benchmark: throughput of the S3 gateway against the disk it writes to.

Starts a real Sabio server and moves one object of random bytes (200 MiB by default):
- upload: boto3 `upload_file` through the gateway (default TransferConfig: 8 MiB parts on 10
  threads, each part CRC32-checked and, over plain HTTP, SHA-256-signed) against copying the
  file directly into the artifact directory and fsyncing it, which is what the store does;
- download: boto3 `download_file` against copying the stored file to a new local file;
- and, as a further row, the upload by a client with `request_checksum_calculation=
  "when_required"` (no CRC32 on either side; over plain HTTP botocore always signs the payload).
Each round runs all five; the medians are reported, with the CPU time the server and the
client spent per upload. Writes the figures to docs/benchmarks.md
(section "s3") unless --no-write is given.

    .venv/bin/python benchmarks/bench_s3.py [--size-mb 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from harness import cpu_pressure, machine, sabio_server, write_section

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


def server_cpu(port: int) -> Callable[[], float]:
    """CPU seconds (user + system) used so far by the server listening on `port`."""
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"server" in command and str(port).encode() in command:

            def used(stat: Path = entry / "stat", ticks: int = os.sysconf("SC_CLK_TCK")) -> float:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / ticks

            return used
    return lambda: 0.0


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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
    names = ("write", "upload", "read", "download", "upload-lean")
    times: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {"server": [], "client": []}
    try:
        with sabio_server() as server:
            s3 = boto3.client("s3")
            lean = boto3.client("s3", config=Config(request_checksum_calculation="when_required"))
            s3.create_bucket(Bucket=BUCKET)
            server_used = server_cpu(server.port)
            bucket_dir = server.home / "artifacts" / BUCKET
            for round_number in range(args.rounds):
                direct = bucket_dir / f"direct-{round_number}.bin"
                key = f"gateway-{round_number}.bin"
                times["write"].append(timed(copy, source, direct, sync=True))
                before = server_used(), client_cpu()
                times["upload"].append(timed(s3.upload_file, str(source), BUCKET, key))
                cpu["server"].append(server_used() - before[0])
                cpu["client"].append(client_cpu() - before[1])
                # New names each round: deleting a large file here makes the file system
                # discard its blocks, which would stall whatever is measured next.
                read, downloaded = work / f"read-{round_number}", work / f"down-{round_number}"
                times["read"].append(timed(copy, direct, read, sync=False))
                times["download"].append(timed(s3.download_file, BUCKET, key, str(downloaded)))
                assert downloaded.stat().st_size == source.stat().st_size
                times["upload-lean"].append(
                    timed(lean.upload_file, str(source), BUCKET, f"lean-{round_number}.bin")
                )
            shutil.rmtree(bucket_dir, ignore_errors=True)  # gigabytes the home would keep
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rates = {name: sorted(size_mb / t for t in values) for name, values in times.items()}
    rate = {name: statistics.median(values) for name, values in rates.items()}
    spread = {name: f"{values[0]:.0f}-{values[-1]:.0f}" for name, values in rates.items()}
    rows = [
        ("upload (`upload_file`) vs write + fsync", "write", "upload"),
        ("download (`download_file`) vs read + write", "read", "download"),
        ("upload, client without CRC32 (see above) vs write + fsync", "write", "upload-lean"),
    ]
    server_s, client_s = (statistics.median(cpu[k]) for k in ("server", "client"))
    for label, base, gateway in rows:
        print(
            f"{label}: direct {rate[base]:.0f} MB/s ({spread[base]}), gateway "
            f"{rate[gateway]:.0f} MB/s ({spread[gateway]}): {rate[gateway] / rate[base]:.0%}"
        )
    cores = os.cpu_count() or 1
    ceiling = size_mb / ((server_s + client_s) / cores)
    print(
        f"CPU per upload: server {server_s:.2f} s, client {client_s:.2f} s "
        f"(at most {ceiling:.0f} MB/s on {cores} cores, whatever the disk)"
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
            f"CPU per upload (median): server {server_s:.2f} s, boto3 {client_s:.2f} s, on the "
            "same 2 cores. The upload is CPU-bound: boto3 hashes every byte twice (SHA-256, "
            "which plain HTTP always signs, and CRC32) and the server three times (the same two, "
            "and MD5 for the ETag: MD5 alone runs at about 500-700 MB/s here and is the largest "
            "single cost); the rest is the kernel copying the bytes from the socket and into the "
            "page cache. The server hashes and writes each 1 MiB block in one pass on a thread "
            "(in parallel with the next receives), reuses its blocks, and joins the parts of a "
            "multipart upload in place (one fsync, no copy); downloads read 1 MiB at a time on "
            "a thread while the previous chunk is sent. With that much CPU per byte, "
            f"{cores} cores cannot upload faster than about {ceiling:.0f} MB/s whatever the "
            "disk: the ratio reaches 60% only where the direct write is disk-bound below "
            f"about {ceiling / 0.6:.0f} MB/s, and stays far below it on a quiet disk that "
            "takes writes at page-cache speed.",
            "",
            'Client settings that help: `Config(request_checksum_calculation="when_required")` '
            "drops the CRC32 on both sides (the last row); the checksum is then the signed "
            "payload's SHA-256, still verified by the server.",
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
