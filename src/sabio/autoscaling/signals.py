"""Where the autoscaler reads the metrics its policies track.

Each capability that publishes a metric in namespace `AWS/SageMaker` the autoscaler may track
(`InvocationsPerInstance` from the runtime router, `ApproximateBacklogSizePerInstance` from
asynchronous inference, ...) offers a `MetricSource`; the autoscaler asks each in turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class MetricSource(Protocol):
    def metric_value(
        self,
        namespace: str,
        metric_name: str,
        dimensions: Mapping[str, str],
        statistic: str,
        period_seconds: float,
    ) -> float | None:
        """The statistic (`Average`, `Sum`, `Maximum`, `Minimum`, `SampleCount`) of the metric
        over the last `period_seconds`, or None when this source does not publish it (or has no
        data point in that window)."""
        ...
