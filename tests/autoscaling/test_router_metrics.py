"""The autoscaler's view of the router's counters: sums over a window shorter than the
recorders' one-minute buckets, and 0 for a served variant that got no traffic."""

from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter_ns

from sabio.autoscaling.router_metrics import RouterMetricSource
from sabio.telemetry.endpoint_metrics import EndpointMetrics, VariantMetrics


@dataclass
class Served:
    """A routed variant as the router hands it to the metrics store."""

    name: str
    instances: list[object] = field(default_factory=list)
    metrics: VariantMetrics | None = None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def invoke(variant: Served, times: int) -> None:
    assert variant.metrics is not None
    for _ in range(times):
        now = perf_counter_ns()
        variant.metrics.record(200, now, now, now, len(variant.instances))


def test_sums_per_window_and_zero_when_idle() -> None:
    metrics = EndpointMetrics()
    variant = Served("AllTraffic", instances=[object(), object()])
    metrics.attach("ep", [variant])
    clock = Clock()
    source = RouterMetricSource(metrics, clock)
    dims = {"EndpointName": "ep", "VariantName": "AllTraffic"}

    def read(metric: str, statistic: str = "Sum") -> float | None:
        return source.metric_value("AWS/SageMaker", metric, dims, statistic, 1.0)

    assert read("InvocationsPerInstance") is None  # a first reading has no window yet
    invoke(variant, 10)
    clock.now += 1
    assert read("InvocationsPerInstance") == 5.0  # 10 invocations over 2 instances
    invoke(variant, 4)
    clock.now += 1
    assert read("Invocations") == 4.0
    clock.now += 1
    assert read("Invocations") == 0.0
    assert read("InvocationsPerInstance", "Average") == 0.0
    assert (
        source.metric_value("AWS/SageMaker", "Invocations", {"EndpointName": "ep"}, "Sum", 1)
        is None
    )
    assert source.metric_value("Other", "Invocations", dims, "Sum", 1.0) is None
    other = {"EndpointName": "nope", "VariantName": "AllTraffic"}
    assert source.metric_value("AWS/SageMaker", "Invocations", other, "Sum", 1.0) is None
