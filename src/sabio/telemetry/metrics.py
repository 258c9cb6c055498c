"""Training metrics scraped from log lines with `AlgorithmSpecification.MetricDefinitions`, as
SageMaker does: each definition's regex is searched in every line and its first group is the value.

The series feed `DescribeTrainingJob`'s `FinalMetricDataList` (the last value of each metric) and
whatever charts them later, so they can be stored as JSON and read back.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from sabio.errors import ValidationError

# The `regex` package (a dependency) ships no type information; it is used for its timeouts.
regex: Any = importlib.import_module("regex")

MAX_LINE_CHARS = 16_384
"""Longer lines are searched only this far, as Docker's log drivers cut lines at 16 KiB."""
SEARCH_TIMEOUT_SECONDS = 0.05
"""A user's regex that backtracks catastrophically gives up on that line instead of hanging
the thread that pumps the job's output."""


class MetricExtractor:
    """Scrapes `[{Name, Regex}]` metric definitions out of log lines and keeps every value."""

    def __init__(self, definitions: Sequence[Mapping[str, Any]]) -> None:
        self.definitions = [dict(d) for d in definitions]
        self._patterns: list[tuple[str, Any]] = []
        for position, definition in enumerate(self.definitions, 1):
            name, pattern = definition.get("Name"), definition.get("Regex")
            if not isinstance(name, str) or not name:
                raise ValidationError(
                    f"MetricDefinitions.{position}.Name must be a non-empty string."
                )
            if not isinstance(pattern, str) or not pattern:
                raise ValidationError(f"The metric definition {name} has no Regex.")
            try:
                compiled = regex.compile(pattern)
            except (regex.error, ValueError, OverflowError) as exc:
                raise ValidationError(
                    f"The regular expression of metric {name} is not valid: {pattern} ({exc})."
                ) from None
            self._patterns.append((name, compiled))
        self._series: dict[str, list[tuple[float, float]]] = {}

    def feed(self, line: str, timestamp: float) -> list[tuple[str, float, float]]:
        """`(name, value, timestamp)` for each metric found in `line`; non-numbers are skipped."""
        found: list[tuple[str, float, float]] = []
        text = line[:MAX_LINE_CHARS]
        for name, pattern in self._patterns:
            try:
                match = pattern.search(text, timeout=SEARCH_TIMEOUT_SECONDS)
            except TimeoutError:
                continue
            if match is None:
                continue
            raw = match.group(1) if pattern.groups else match.group(0)
            value = _number(raw)
            if value is None:
                continue
            self._series.setdefault(name, []).append((timestamp, value))
            found.append((name, value, timestamp))
        return found

    def final(self) -> list[dict[str, Any]]:
        """`FinalMetricDataList`: the last value of each metric, in definition order."""
        final = []
        for name, _ in self._patterns:
            points = self._series.get(name)
            if points:
                timestamp, value = points[-1]
                final.append({"MetricName": name, "Value": value, "Timestamp": timestamp})
        return final

    def series(self) -> dict[str, list[tuple[float, float]]]:
        """Every `(timestamp, value)` of each metric that has been seen, oldest first."""
        return {name: list(points) for name, points in self._series.items()}

    def to_json(self) -> str:
        return json.dumps(
            {
                "definitions": self.definitions,
                "series": {
                    name: [list(p) for p in points] for name, points in self._series.items()
                },
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> MetricExtractor:
        data = json.loads(text)
        extractor = cls(data["definitions"])
        for name, points in data.get("series", {}).items():
            extractor._series[name] = [(float(t), float(v)) for t, v in points]
        return extractor


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None
