"""The in-memory endpoint metrics: what one invocation adds, per-minute buckets, retention, the
recorders' life with the routes, and the Prometheus page."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from sabio.telemetry import endpoint_metrics, prometheus
from sabio.telemetry.endpoint_metrics import (
    ERRORS_4XX,
    ERRORS_5XX,
    INVOCATIONS,
    MODEL_LATENCY,
    OVERHEAD_LATENCY,
    PER_INSTANCE,
    EndpointMetrics,
    VariantMetrics,
)

EPOCH = 1_700_000_040  # a whole minute
MS = 1_000_000


class Clock:
    """perf_counter_ns and the wall clock of the module under test, moved by hand."""

    def __init__(self) -> None:
        self.perf = 5_000 * 1_000_000_000

    def wall_ns(self) -> int:
        return EPOCH * 1_000_000_000 + self.perf - 5_000 * 1_000_000_000

    def wall(self) -> float:
        return self.wall_ns() / 1e9

    def advance(self, seconds: float) -> None:
        self.perf += round(seconds * 1e9)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(endpoint_metrics, "perf_counter_ns", lambda: fake.perf)
    monkeypatch.setattr(endpoint_metrics, "_wall_ns", fake.wall_ns)
    return fake


@dataclass
class FakeVariant:
    name: str
    instances: list[object] = field(default_factory=lambda: [object()])
    metrics: VariantMetrics | None = None


def invoke(
    clock: Clock, recorder: VariantMetrics, status: int = 200, model_ms: int = 4, before_ms: int = 1
) -> None:
    """An invocation as the router records it: `before_ms` of routing, then the model call."""
    started = clock.perf
    clock.advance(before_ms / 1000)
    sent = clock.perf
    clock.advance(model_ms / 1000)
    answered = clock.perf if status else 0
    recorder.record(status, started, sent, answered, recorder.instance_count())


def attached(metrics: EndpointMetrics, endpoint: str = "iris", *names: str) -> list[FakeVariant]:
    variants = [FakeVariant(name) for name in names or ("AllTraffic",)]
    metrics.attach(endpoint, variants)
    return variants


def test_one_minute_of_invocations_gives_sagemaker_statistics(clock: Clock) -> None:
    metrics = EndpointMetrics(clock=clock.wall)
    (variant,) = attached(metrics)
    recorder = variant.metrics
    assert recorder is not None
    invoke(clock, recorder, model_ms=2)
    invoke(clock, recorder, model_ms=6, before_ms=3)
    invoke(clock, recorder, status=404)
    invoke(clock, recorder, status=503)
    invoke(clock, recorder, status=0)  # a timeout: no answer, a 5XX

    def stats(metric: str) -> endpoint_metrics.Statistics:
        (point,) = metrics.datapoints("iris", "AllTraffic", metric, EPOCH, EPOCH + 60, 60)
        assert point.timestamp == EPOCH
        return point.statistics

    assert stats(INVOCATIONS) == endpoint_metrics.Statistics(5, 5.0, 1.0, 1.0)
    assert stats(ERRORS_4XX) == endpoint_metrics.Statistics(5, 1.0, 0.0, 1.0)
    assert stats(ERRORS_5XX).sum == 2.0
    assert stats(ERRORS_5XX).average == pytest.approx(0.4)
    model = stats(MODEL_LATENCY)
    assert (model.minimum, model.maximum, model.sum) == (2000.0, 6000.0, 20000.0)
    overhead = stats(OVERHEAD_LATENCY)
    assert (overhead.minimum, overhead.maximum, overhead.sum) == (1000.0, 3000.0, 7000.0)
    assert stats(PER_INSTANCE) == endpoint_metrics.Statistics(5, 5.0, 1.0, 1.0)


def test_invocations_per_instance_divides_by_the_instances_serving_then(clock: Clock) -> None:
    metrics = EndpointMetrics(clock=clock.wall)
    (variant,) = attached(metrics)
    assert variant.metrics is not None
    variant.instances = [object(), object()]
    invoke(clock, variant.metrics)
    invoke(clock, variant.metrics)
    variant.instances = [object(), object(), object(), object()]
    invoke(clock, variant.metrics)
    (point,) = metrics.datapoints("iris", "AllTraffic", PER_INSTANCE, EPOCH, EPOCH + 60, 60)
    assert point.statistics == endpoint_metrics.Statistics(3, 1.25, 0.25, 0.5)


def test_buckets_follow_the_wall_clock_and_periods_merge_them(clock: Clock) -> None:
    metrics = EndpointMetrics(clock=clock.wall)
    (variant,) = attached(metrics)
    assert variant.metrics is not None
    for _ in range(3):
        invoke(clock, variant.metrics)  # 12:00:40 + a few ms
    clock.advance(60)
    invoke(clock, variant.metrics)
    clock.advance(240)
    invoke(clock, variant.metrics, status=500)
    by_minute = metrics.datapoints("iris", "AllTraffic", INVOCATIONS, EPOCH, EPOCH + 3600, 60)
    assert [(p.timestamp - EPOCH, p.statistics.sum) for p in by_minute] == [
        (0, 3.0),
        (60, 1.0),
        (300, 1.0),
    ]
    by_five = metrics.datapoints("iris", "AllTraffic", ERRORS_5XX, EPOCH, EPOCH + 3600, 300)
    assert [
        (p.timestamp - EPOCH, p.statistics.sum, p.statistics.sample_count) for p in by_five
    ] == [
        (0, 0.0, 4),
        (300, 1.0, 1),
    ]
    # The end is exclusive, and a later start leaves earlier buckets out.
    assert len(metrics.datapoints("iris", "AllTraffic", INVOCATIONS, EPOCH, EPOCH + 60, 60)) == 1
    later = metrics.datapoints("iris", "AllTraffic", INVOCATIONS, EPOCH + 60, EPOCH + 3600, 60)
    assert [p.timestamp - EPOCH for p in later] == [60, 300]
    # Unknown variants, endpoints (names are matched exactly) and metrics have no data.
    assert metrics.datapoints("iris", "Other", INVOCATIONS, EPOCH, EPOCH + 3600, 60) == []
    assert metrics.datapoints("IRIS", "AllTraffic", INVOCATIONS, EPOCH, EPOCH + 3600, 60) == []
    assert metrics.datapoints("iris", "AllTraffic", "CPUUtilization", EPOCH, EPOCH + 60, 60) == []


def test_figures_leave_after_the_retention_window(clock: Clock) -> None:
    metrics = EndpointMetrics(period_seconds=60, retention_seconds=600, clock=clock.wall)
    (variant,) = attached(metrics)
    assert variant.metrics is not None
    for _ in range(30):  # one invocation a minute for half an hour
        invoke(clock, variant.metrics)
        clock.advance(60)
    points = metrics.datapoints("iris", "AllTraffic", INVOCATIONS, 0, EPOCH + 7200, 60)
    assert len(points) == 10
    assert points[-1].timestamp == EPOCH + 29 * 60
    assert len(variant.metrics.history) <= 11
    # Lifetime counters (Prometheus) keep counting.
    assert variant.metrics.lifetime()[0] == 30


def test_recorders_live_with_their_routes(clock: Clock) -> None:
    metrics = EndpointMetrics(period_seconds=60, retention_seconds=600, clock=clock.wall)
    first, second = attached(metrics, "Iris", "A", "B")
    assert first.metrics is not None
    invoke(clock, first.metrics)
    # An update routes a new variant list: A keeps its recorder, B is no longer served.
    again, _ = attached(metrics, "Iris", "A", "C")
    assert again.metrics is first.metrics
    assert first.metrics.instance_count() == 1
    assert second.metrics is not None
    assert second.metrics.instance_count() == 0
    assert [(r.endpoint, r.variant) for r in metrics.recorders()] == [
        ("Iris", "A"),
        ("Iris", "C"),
    ]  # B saw no invocation: nothing to keep
    assert [r.variant for r in metrics.active()] == ["A"]
    # Deleted: the figures stay readable for the retention window, then go.
    metrics.detach("iris")
    assert [r.variant for r in metrics.recorders()] == ["A"]
    assert metrics.datapoints("Iris", "A", INVOCATIONS, EPOCH, EPOCH + 60, 60)
    clock.advance(700)
    assert metrics.recorders() == []


def test_prometheus_page(clock: Clock) -> None:
    metrics = EndpointMetrics(clock=clock.wall)
    (variant,) = attached(metrics, 'we"ird')
    assert variant.metrics is not None
    invoke(clock, variant.metrics, model_ms=3)
    invoke(clock, variant.metrics, status=400, model_ms=30)
    clock.advance(120)
    invoke(clock, variant.metrics, status=502, model_ms=300)
    text = prometheus.render(metrics)
    labels = 'endpoint="we\\"ird",variant="AllTraffic"'
    lines = set(text.splitlines())
    assert "# TYPE sabio_invocations_total counter" in lines
    assert f"sabio_invocations_total{{{labels}}} 3" in lines
    assert f'sabio_invocation_errors_total{{{labels},class="4xx"}} 1' in lines
    assert f'sabio_invocation_errors_total{{{labels},class="5xx"}} 1' in lines
    assert "# TYPE sabio_model_latency_seconds histogram" in lines
    assert f'sabio_model_latency_seconds_bucket{{{labels},le="0.005"}} 1' in lines
    assert f'sabio_model_latency_seconds_bucket{{{labels},le="0.05"}} 2' in lines
    assert f'sabio_model_latency_seconds_bucket{{{labels},le="+Inf"}} 3' in lines
    assert f"sabio_model_latency_seconds_count{{{labels}}} 3" in lines
    assert f"sabio_model_latency_seconds_sum{{{labels}}} 0.333" in lines
    assert f"sabio_overhead_latency_seconds_count{{{labels}}} 3" in lines
    assert f"sabio_variant_instances{{{labels}}} 1" in lines
    assert text.endswith("\n")


def test_an_empty_store_renders_only_the_family_headers() -> None:
    text = prometheus.render(EndpointMetrics())
    assert all(line.startswith("#") for line in text.splitlines())
    assert "# TYPE sabio_variant_instances gauge" in text
