"""DataProcessing on records: input filters, output splitting, joins and output filters."""

from __future__ import annotations

import json

import pytest

from sabio.transform.joins import CSV, JSON, Processor, data_format, split_response
from sabio.transform.jsonpath import parse
from sabio.transform.records import RecordError


def test_data_formats() -> None:
    assert data_format("text/csv") == CSV
    assert data_format("text/csv; charset=utf-8") == CSV
    assert data_format("application/jsonlines") == JSON
    assert data_format("application/json") == JSON
    assert data_format("application/x-npy") is None
    assert data_format(None) is None


def test_csv_input_filter_drops_columns_and_keeps_quoting() -> None:
    processor = Processor(CSV, input_filter=parse("$[1:]"))
    assert processor.filter_input(b'id-1,5.1,"a,b",3') == b'5.1,"a,b",3'
    assert processor.filter_input(b"x,1") == b"1"


def test_json_input_filter_selects_an_attribute() -> None:
    processor = Processor(JSON, input_filter=parse("$.features"))
    assert processor.filter_input(b'{"id": 1, "features": [1, 2]}') == b"[1,2]"
    with pytest.raises(RecordError, match=r"InputFilter \$.features: the record has no attr"):
        processor.filter_input(b'{"id": 1}')
    with pytest.raises(RecordError, match="the record is not valid JSON"):
        processor.filter_input(b"{oops")


def test_split_response_by_lines_arrays_and_wrapped_arrays() -> None:
    assert split_response(b"1\n2\n", CSV, 2) == ["1", "2"]
    assert split_response(b"0.1,0.9\r\n", CSV, 1) == ["0.1,0.9"]
    assert split_response(b"[1, 2]", JSON, 2) == [1, 2]
    assert split_response(b'{"predictions": [1, 2]}', JSON, 2) == [1, 2]
    assert split_response(b'{"predictions": [1, 2]}', JSON, 1) == [{"predictions": [1, 2]}]
    assert split_response(b'{"a": 1}\n{"a": 2}\n', JSON, 2) == [{"a": 1}, {"a": 2}]
    with pytest.raises(RecordError, match="returned 1 output for 3 records"):
        split_response(b"[1]", JSON, 3)
    with pytest.raises(RecordError, match="returned 2 outputs for 3 records"):
        split_response(b"1\n2\n", CSV, 3)
    with pytest.raises(RecordError, match="the response is not valid JSON"):
        split_response(b"nope", JSON, 1)


def test_csv_join_appends_output_columns() -> None:
    processor = Processor(CSV, join=True, assemble_with="Line")
    out = processor.outputs([b"1,2,3", b"4,5,6"], b"0\n1\n", "text/csv")
    assert out == b"1,2,3,0\n4,5,6,1\n"


def test_csv_join_with_an_output_filter_and_json_output() -> None:
    processor = Processor(CSV, join=True, output_filter=parse("$[0,-1]"), assemble_with="Line")
    out = processor.outputs([b"id-1,2,3", b"id-2,5,6"], b"[0, 1]", "application/json")
    assert out == b"id-1,0\nid-2,1\n"
    with pytest.raises(RecordError, match="index 9 is out of range") as caught:
        Processor(CSV, join=True, output_filter=parse("$[9]")).outputs(
            [b"a", b"b"], b"0\n1\n", "text/csv"
        )
    assert caught.value.index == 0


def test_csv_output_filter_without_join() -> None:
    processor = Processor(CSV, output_filter=parse("$[1]"), assemble_with="Line")
    assert processor.outputs([b"x"], b"0.2,0.8\n", "text/csv") == b"0.8\n"


def test_json_join_adds_sagemaker_output_or_wraps_non_objects() -> None:
    processor = Processor(JSON, join=True, assemble_with="Line")
    out = processor.outputs(
        [b'{"id": 1}', b"[5, 6]"], b'{"predictions": [2, 0]}', "application/json"
    )
    first, second = (json.loads(line) for line in out.decode().splitlines())
    assert first == {"id": 1, "SageMakerOutput": 2}
    assert second == {"SageMakerInput": [5, 6], "SageMakerOutput": 0}


def test_json_join_with_output_filter() -> None:
    processor = Processor(
        JSON, join=True, output_filter=parse("$['id','SageMakerOutput']"), assemble_with="Line"
    )
    out = processor.outputs([b'{"id": 3, "features": [1]}'], b"[1]", "application/json")
    assert json.loads(out) == {"id": 3, "SageMakerOutput": [1]}


def test_assemble_none_concatenates_records() -> None:
    processor = Processor(JSON, join=True)
    assert processor.outputs([b"1", b"2"], b"[7, 8]", "application/json") == (
        b'{"SageMakerInput":1,"SageMakerOutput":7}{"SageMakerInput":2,"SageMakerOutput":8}'
    )


def test_json_join_with_a_text_response_keeps_the_text() -> None:
    processor = Processor(JSON, join=True, assemble_with="Line")
    assert json.loads(processor.outputs([b'{"a": 1}'], b"yes\n", "text/plain")) == {
        "a": 1,
        "SageMakerOutput": "yes",
    }
