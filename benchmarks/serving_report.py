"""The tables and target verdicts of `bench_serving.py`, from its medians."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROWS = (1, 100)
CLIENTS = (1, 16)
PEERS = {"mlserver", "mlserver-pw0", "mlflow", "bentoml"}


@dataclass(frozen=True)
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms: float
    wrk_cpu_ms: float


LABELS = {
    "floor": "Starlette in-process (floor)",
    "sabio": "Sabio (router + worker)",
    "mlserver": "MLServer 1.7.1",
    "mlserver-pw0": "MLServer 1.7.1, parallel_workers 0",
    "mlflow": "MLflow 3.17.2",
    "bentoml": "BentoML 1.4.39",
}


def verdict(ok: bool) -> str:
    return "met" if ok else "missing"


def targets(bench: Any) -> list[str]:
    """The targets, on LogisticRegression, 1 row per request, one worker."""
    results, lines = bench.results, []

    def get(server: str, clients: int) -> Run | None:
        return results.get((server, "logreg", 1, 1, clients))

    sabio16, floor16, sabio1 = get("sabio", 16), get("floor", 16), get("sabio", 1)
    peers16 = {s: r for s in PEERS if (r := get(s, 16)) is not None}
    peers1 = {s: r for s in PEERS if (r := get(s, 1)) is not None}
    if sabio16 is not None and peers16:
        best = max(peers16, key=lambda s: peers16[s].rps)
        ratio = sabio16.rps / peers16[best].rps
        cpu = peers16[best].server_cpu_ms / sabio16.server_cpu_ms
        lines.append(
            f"| req/s at 16 clients >= 2x the best peer ({LABELS[best]}) | {ratio:.2f}x "
            f"(server CPU per request {cpu:.2f}x less) | {verdict(ratio >= 2)} |"
        )
    if sabio16 is not None and floor16 is not None:
        share = sabio16.rps / floor16.rps
        lines.append(
            f"| req/s at 16 clients >= 60% of the floor | {share:.0%} | {verdict(share >= 0.6)} |"
        )
    if sabio1 is not None and peers1:
        best = min(peers1, key=lambda s: peers1[s].p99_ms)
        ratio = sabio1.p99_ms / peers1[best].p99_ms
        lines.append(
            f"| p99 at 1 client <= half the best peer's ({LABELS[best]}, "
            f"{peers1[best].p99_ms:.2f} ms) | {sabio1.p99_ms:.2f} ms ({ratio:.2f}x) "
            f"| {verdict(ratio <= 0.5)} |"
        )
    if "sabio" in bench.cold:
        cold = bench.cold["sabio"]
        lines.append(
            "| cold start < 1 s (CreateEndpoint to the first 200, environment cached: the "
            "second endpoint of a freshly started server, created right after the first) "
            f"| {cold:.2f} s | {verdict(cold < 1)} |"
        )
    return ["| target | measured | |", "|---|---|---|", *lines] if lines else []


def tables(bench: Any) -> list[str]:
    lines: list[str] = []
    names = {"logreg": "LogisticRegression", "forest": "RandomForest (50 trees, depth 8)"}
    for model in bench.args.models:
        for rows in ROWS:
            lines += [
                f"**{names[model]}, {rows} row{'s' if rows > 1 else ''} per request**",
                "",
                "| server | workers | clients | req/s | p50 | p99 | server CPU/req | wrk CPU/req |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for workers in bench.args.workers:
                for server in bench.args.servers:
                    for clients in CLIENTS:
                        run = bench.results.get((server, model, workers, rows, clients))
                        if run is None:
                            continue
                        lines.append(
                            f"| {LABELS[server]} | {workers} | {clients} | {run.rps:,.0f} "
                            f"| {run.p50_ms:.2f} ms | {run.p99_ms:.2f} ms "
                            f"| {run.server_cpu_ms:.3f} ms | {run.wrk_cpu_ms:.3f} ms |"
                        )
            lines.append("")
    lines += ["| server | cold start (launch to first 200) |", "|---|---|"]
    for server, cold in bench.cold.items():
        what = " (CreateEndpoint, environment cached)" if server == "sabio" else ""
        lines.append(f"| {LABELS[server]}{what} | {cold:.2f} s |")
    return lines
