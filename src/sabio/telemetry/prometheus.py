"""The endpoint metrics in the Prometheus text exposition format (version 0.0.4), for
`GET /metrics`.

Counters and histograms are lifetime figures of the server process (they restart from zero with
it, which Prometheus reads as a counter reset); latencies are in seconds, as Prometheus names
them. A variant's series stay while the endpoint serves it and afterwards while it has figures
in the retention window.
"""

from __future__ import annotations

from itertools import accumulate

from sabio.telemetry.endpoint_metrics import (
    LATENCY_BOUNDS_SECONDS,
    EndpointMetrics,
    VariantMetrics,
    VariantSeries,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LE = [*(repr(b) for b in LATENCY_BOUNDS_SECONDS), "+Inf"]
_SECONDS = {"Seconds": 1.0, "Milliseconds": 1e-3, "Microseconds": 1e-6}


def render(metrics: EndpointMetrics) -> str:
    recorders = metrics.recorders()
    lines: list[str] = []
    totals = [(r, _labels(r), r.lifetime()) for r in recorders]
    _family(
        lines,
        "sabio_invocations_total",
        "counter",
        "InvokeEndpoint requests that reached a model worker.",
    )
    for _, labels, lifetime in totals:
        lines.append(f"sabio_invocations_total{{{labels}}} {lifetime[0]}")
    _family(
        lines,
        "sabio_invocation_errors_total",
        "counter",
        "Invocations the model container answered with a 4xx or 5xx status "
        "(timeouts and dropped connections count as 5xx).",
    )
    for _, labels, lifetime in totals:
        lines.append(f'sabio_invocation_errors_total{{{labels},class="4xx"}} {lifetime[1]}')
        lines.append(f'sabio_invocation_errors_total{{{labels},class="5xx"}} {lifetime[2]}')
    _histogram(
        lines,
        "sabio_model_latency_seconds",
        "Time the model worker took to answer, as SageMaker's ModelLatency.",
        [(labels, r.model_hist, lifetime[3]) for r, labels, lifetime in totals],
    )
    _histogram(
        lines,
        "sabio_overhead_latency_seconds",
        "Time spent in Sabio's router besides the model call, as SageMaker's OverheadLatency.",
        [(labels, r.overhead_hist, lifetime[4]) for r, labels, lifetime in totals],
    )
    _family(
        lines,
        "sabio_variant_instances",
        "gauge",
        "Instances (model workers) currently routed for the variant.",
    )
    for recorder, labels, _ in totals:
        lines.append(f"sabio_variant_instances{{{labels}}} {recorder.instance_count()}")
    _family(
        lines,
        "sabio_model_setup_seconds",
        "summary",
        "Cold starts of serverless workers and the time they took, as SageMaker's ModelSetupTime.",
    )
    for recorder, labels, _ in totals:
        starts, micros = recorder.setup_totals
        lines.append(f"sabio_model_setup_seconds_sum{{{labels}}} {micros / 1e6!r}")
        lines.append(f"sabio_model_setup_seconds_count{{{labels}}} {starts}")
    _provisioned_concurrency(lines, [(r, labels) for r, labels, _ in totals])
    for series in metrics.variant_series:
        _variant_series(lines, series)
    for counter in metrics.counters:
        _family(lines, counter.name, "counter", counter.help)
        lines.append(f"{counter.name} {counter.value()}")
    lines.append("")
    return "\n".join(lines)


def _variant_series(lines: list[str], series: VariantSeries) -> None:
    """Each metric as its `exposed` family: a `_total` counter of the Sum, or a `_seconds`
    summary (count and sum, converted from the metric's unit)."""
    lifetime = [
        (f'endpoint="{_escape(endpoint)}",variant="{_escape(variant)}"', figures)
        for endpoint, variant, figures in series.lifetime()
    ]
    for metric, (name, text) in series.exposed.items():
        if name.endswith("_total"):
            _family(lines, name, "counter", text)
            for labels, figures in lifetime:
                lines.append(f"{name}{{{labels}}} {int(figures[metric].sum)}")
            continue
        _family(lines, name, "summary", text)
        scale = _SECONDS[series.units[metric]]
        for labels, figures in lifetime:
            stats = figures[metric]
            lines.append(f"{name}_sum{{{labels}}} {stats.sum * scale!r}")
            lines.append(f"{name}_count{{{labels}}} {stats.sample_count}")


def _provisioned_concurrency(lines: list[str], recorders: list[tuple[VariantMetrics, str]]) -> None:
    """Serverless variants with provisioned concurrency: what is provisioned, what it serves
    now, and the invocations within it and beyond it (SageMaker's spillover)."""
    figures = [(labels, r.concurrency.gauges()) for r, labels in recorders if r.concurrency]
    families = (
        ("sabio_provisioned_concurrency", "gauge", "ProvisionedConcurrency of the variant now."),
        (
            "sabio_provisioned_concurrency_executions",
            "gauge",
            "Invocations in flight within the provisioned concurrency now.",
        ),
        (
            "sabio_provisioned_concurrency_invocations_total",
            "counter",
            "Invocations served within the provisioned concurrency, as SageMaker's "
            "ServerlessProvisionedConcurrencyInvocations.",
        ),
        (
            "sabio_provisioned_concurrency_spillover_invocations_total",
            "counter",
            "Invocations beyond the provisioned concurrency, served on demand, as SageMaker's "
            "ServerlessProvisionedConcurrencySpilloverInvocations.",
        ),
    )
    for index, (name, kind, text) in enumerate(families):
        _family(lines, name, kind, text)
        for labels, values in figures:
            lines.append(f"{name}{{{labels}}} {values[index]}")


def _family(lines: list[str], name: str, kind: str, text: str) -> None:
    lines.append(f"# HELP {name} {text}")
    lines.append(f"# TYPE {name} {kind}")


def _histogram(
    lines: list[str], name: str, text: str, series: list[tuple[str, list[int], int]]
) -> None:
    _family(lines, name, "histogram", text)
    for labels, counts, total_ns in series:
        cumulative = list(accumulate(counts))
        for le, count in zip(_LE, cumulative, strict=True):
            lines.append(f'{name}_bucket{{{labels},le="{le}"}} {count}')
        lines.append(f"{name}_sum{{{labels}}} {total_ns / 1e9!r}")
        lines.append(f"{name}_count{{{labels}}} {cumulative[-1]}")


def _labels(recorder: VariantMetrics) -> str:
    return f'endpoint="{_escape(recorder.endpoint)}",variant="{_escape(recorder.variant)}"'


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
