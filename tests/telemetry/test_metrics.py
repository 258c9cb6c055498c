"""Scraping training metrics out of log lines with SageMaker's MetricDefinitions."""

from __future__ import annotations

import json

import pytest

from sabio.errors import ValidationError
from sabio.telemetry.metrics import MetricExtractor

# The shapes users write, taken from common SageMaker examples.
XGBOOST = [
    {
        "Name": "validation:rmse",
        "Regex": r".*\[[0-9]+\].*#011validation-rmse:([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?).*",
    },
    {
        "Name": "train:rmse",
        "Regex": r".*\[[0-9]+\].*#011train-rmse:([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?).*",
    },
]
SCRIPT = [
    {"Name": "loss", "Regex": r"loss=(.*?);"},
    {"Name": "accuracy", "Regex": r"accuracy: ([0-9\.]+)"},
]


def test_first_group_of_each_matching_regex_is_the_value() -> None:
    extractor = MetricExtractor(XGBOOST)
    assert extractor.feed("[0]#011train-rmse:3.5#011validation-rmse:4.25", 10.0) == [
        ("validation:rmse", 4.25, 10.0),
        ("train:rmse", 3.5, 10.0),
    ]
    assert extractor.feed("[1]#011train-rmse:2.5e-1#011validation-rmse:3", 11.0) == [
        ("validation:rmse", 3.0, 11.0),
        ("train:rmse", 0.25, 11.0),
    ]
    assert extractor.feed("Training finished", 12.0) == []
    assert extractor.final() == [
        {"MetricName": "validation:rmse", "Value": 3.0, "Timestamp": 11.0},
        {"MetricName": "train:rmse", "Value": 0.25, "Timestamp": 11.0},
    ]
    assert extractor.series() == {
        "validation:rmse": [(10.0, 4.25), (11.0, 3.0)],
        "train:rmse": [(10.0, 3.5), (11.0, 0.25)],
    }


def test_values_that_are_not_finite_numbers_are_skipped() -> None:
    extractor = MetricExtractor(SCRIPT)
    assert extractor.feed("epoch 1 loss=abc; accuracy: 0.5", 1.0) == [("accuracy", 0.5, 1.0)]
    assert extractor.feed("loss=nan;", 2.0) == []
    assert extractor.feed("loss=inf;", 3.0) == []
    assert extractor.feed("loss= 0.75 ;", 4.0) == [("loss", 0.75, 4.0)]
    assert [m["MetricName"] for m in extractor.final()] == ["loss", "accuracy"]


def test_metrics_never_seen_are_left_out_of_the_final_list() -> None:
    extractor = MetricExtractor(SCRIPT)
    extractor.feed("accuracy: 0.9", 5.0)
    assert extractor.final() == [{"MetricName": "accuracy", "Value": 0.9, "Timestamp": 5.0}]
    assert MetricExtractor([]).final() == []


def test_a_regex_without_a_group_uses_the_whole_match() -> None:
    extractor = MetricExtractor([{"Name": "n", "Regex": r"\d+\.\d+"}])
    assert extractor.feed("value 12.5 here", 1.0) == [("n", 12.5, 1.0)]


@pytest.mark.parametrize(
    ("definitions", "wording"),
    [
        ([{"Name": "loss", "Regex": "loss=(.*"}], "regular expression of metric loss"),
        ([{"Name": "loss", "Regex": ""}], "has no Regex"),
        ([{"Regex": "x"}], "MetricDefinitions.1.Name"),
    ],
)
def test_bad_definitions_are_rejected_up_front(
    definitions: list[dict[str, str]], wording: str
) -> None:
    with pytest.raises(ValidationError, match=wording):
        MetricExtractor(definitions)


def test_series_survive_a_json_round_trip() -> None:
    extractor = MetricExtractor(SCRIPT)
    extractor.feed("loss=1.5; accuracy: 0.25", 100.5)
    extractor.feed("loss=0.5;", 101.5)
    stored = extractor.to_json()
    assert json.loads(stored)["series"]["loss"] == [[100.5, 1.5], [101.5, 0.5]]
    restored = MetricExtractor.from_json(stored)
    assert restored.series() == extractor.series()
    assert restored.final() == extractor.final()
    restored.feed("loss=0.25;", 102.5)  # it keeps scraping where the first one stopped
    assert restored.final()[0] == {"MetricName": "loss", "Value": 0.25, "Timestamp": 102.5}


def test_very_long_lines_are_searched_only_at_their_start() -> None:
    extractor = MetricExtractor([{"Name": "late", "Regex": r"late=([0-9]+)"}])
    assert extractor.feed("x" * 20_000 + "late=5", 1.0) == []
    assert extractor.feed("late=5" + "x" * 20_000, 1.0) == [("late", 5.0, 1.0)]
