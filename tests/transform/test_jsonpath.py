"""The JSONPath subset of InputFilter/OutputFilter: what parses, what applies, what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from sabio.transform.jsonpath import FilterError, JsonPathError, parse

RECORD = {"id": 7, "features": [1, 2, 3, 4], "meta": {"a": 1, "b": 2}, "SageMakerOutput": 0}
ROW = ["id", "f1", "f2", "f3", "f4", "f5"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", RECORD),
        ("", RECORD),
        ("$.id", 7),
        ("$.features", [1, 2, 3, 4]),
        ("$.features[0]", 1),
        ("$.features[-1]", 4),
        ("$.features[1:2]", [2, 3]),
        ("$.features[1:]", [2, 3, 4]),
        ("$.features[:1]", [1, 2]),
        ("$.features[0,2]", [1, 3]),
        ("$.features[0,2:]", [1, 3, 4]),
        ("$.features[-2:]", [3, 4]),
        ("$.features[*]", [1, 2, 3, 4]),
        ("$.meta.*", [1, 2]),
        ("$.meta.b", 2),
        ("$['id','SageMakerOutput']", {"id": 7, "SageMakerOutput": 0}),
        ('$["id"]', 7),
        ("$.meta.['a','b']", {"a": 1, "b": 2}),
        ("$['meta']['a']", 1),
    ],
)
def test_paths_select_what_sagemaker_documents(path: str, expected: Any) -> None:
    assert parse(path).apply(RECORD) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", ROW),
        ("$[1:]", ROW[1:]),
        ("$[1:4]", ROW[1:5]),  # inclusive end: the second through fifth columns
        ("$[:5]", ROW[:6]),
        ("$[0,-1]", ["id", "f5"]),
        ("$[0]", ["id"]),
        ("$[-1]", ["f5"]),
        ("$[1:-2]", ROW[1:5]),
    ],
)
def test_csv_rows_are_arrays_and_stay_rows(path: str, expected: list[str]) -> None:
    assert parse(path).apply_row(ROW) == expected


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("features", "must start with $"),
        ("$..id", "recursive descent (..) is not supported"),
        ("$[?(@.id > 1)]", "filter expression [?(@.id > 1)] is not supported"),
        ("$[(@.length-1)]", "script expression"),
        ("$[0:4:2]", "slice step"),
        ("$[a]", "neither indexes, a slice nor quoted names"),
        ("$[1:x]", "not a slice of whole numbers"),
        ("$[0", "is never closed"),
        ("$[]", "empty brackets"),
        ("$['a','b'].c", "must be the last part of the path"),
        ("$[1:].x", "must be the last part of the path"),
        ("$.*.x", "must be the last part of the path"),
        ("$ id", "unexpected ' '"),
        ("$.", "expected an attribute name"),
    ],
)
def test_unsupported_syntax_is_refused_precisely(path: str, message: str) -> None:
    with pytest.raises(JsonPathError, match="InputFilter") as caught:
        parse(path, "InputFilter")
    assert message in str(caught.value)


def test_by_name_is_known_for_csv_checks() -> None:
    assert parse("$.features").by_name
    assert parse("$['a','b']").by_name
    assert not parse("$[1:]").by_name
    assert parse("$").is_root


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("$.missing", RECORD, "no attribute 'missing'"),
        ("$['id','nope']", RECORD, "no attribute 'nope'"),
        ("$.features[9]", RECORD, "index 9 is out of range for 4 elements"),
        ("$.id.x", RECORD, "'x' needs an object, found a number"),
        ("$[0]", {"a": 1}, "an index needs an array, found an object"),
        ("$.*", "text", "* needs an object or an array, found a string"),
    ],
)
def test_filters_that_do_not_fit_the_record_say_why(path: str, value: Any, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse(path).apply(value)
    assert message in str(caught.value)


def test_scalar_fields_of_a_row_are_written_as_json() -> None:
    assert parse("$[*]").apply_row(["a"]) == ["a"]
    assert parse("$").apply_row(["1", "2"]) == ["1", "2"]
