"""Batch transform's `DataProcessing`: the input filter applied to each record before it is
sent, and after the response the per-record outputs, joined with their inputs
(`JoinSource: Input`), filtered (`OutputFilter`) and assembled.

CSV records are rows of fields (JSON arrays of strings, so only index paths apply); a CSV join
appends the output's fields to the input row. JSON records are joined by adding
`SageMakerOutput` to an input object, or as `{"SageMakerInput": ..., "SageMakerOutput": ...}`
when the input is not an object.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from sabio.transform.jsonpath import ROOT, FilterError, JsonPath
from sabio.transform.records import LINE, RecordError

CSV = "csv"
JSON = "json"
_CSV_TYPES = frozenset({"text/csv"})
_JSON_TYPES = frozenset(
    {
        "application/json",
        "application/jsonlines",
        "application/x-jsonlines",
        "application/json-lines",
        "application/jsonl",
    }
)
DATA_TYPES = "text/csv, application/json or application/jsonlines"


def data_format(content_type: str | None) -> str | None:
    """`csv`, `json` or None for a content type (parameters ignored)."""
    if not content_type:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    if media in _CSV_TYPES:
        return CSV
    if media in _JSON_TYPES:
        return JSON
    return None


def parse_row(text: str) -> list[str]:
    rows = list(csv.reader([text]))
    return rows[0] if rows else []


def format_row(fields: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue()


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Processor:
    """The DataProcessing of one job, for records of `input_format` (None: no processing)."""

    input_format: str | None = None
    input_filter: JsonPath = ROOT
    join: bool = False
    output_filter: JsonPath = ROOT
    assemble_with: str = "None"

    @property
    def filters_input(self) -> bool:
        return not self.input_filter.is_root

    @property
    def per_record_output(self) -> bool:
        """Whether responses must be cut into one output per record (join or output filter)."""
        return self.join or not self.output_filter.is_root

    # Before the request

    def filter_input(self, record: bytes) -> bytes:
        if self.input_format == CSV:
            row = parse_row(_text(record))
            return format_row(_apply_row(self.input_filter, row, "InputFilter")).encode()
        value = _json(record)
        return _dump(_apply(self.input_filter, value, "InputFilter")).encode()

    # After the response

    def outputs(self, inputs: list[bytes], body: bytes, response_type: str | None) -> bytes:
        """The assembled output of one mini-batch from its inputs and the model's response."""
        response_format = data_format(response_type)
        values = split_response(body, response_format, len(inputs))
        lines = [
            self._combine(index, source, value, response_format)
            for index, (source, value) in enumerate(zip(inputs, values, strict=True))
        ]
        separator = "\n" if self.assemble_with == LINE else ""
        text = separator.join(lines) + separator
        return text.encode()

    def _combine(self, index: int, source: bytes, value: Any, response_format: str | None) -> str:
        try:
            if self.input_format == CSV:
                return self._combine_csv(source, value, response_format)
            return self._combine_json(source, value)
        except RecordError as exc:
            exc.index = index
            raise

    def _combine_csv(self, source: bytes, value: Any, response_format: str | None) -> str:
        if response_format == CSV:
            if self.join and self.output_filter.is_root:
                return _text(source) + "," + str(value)  # the fields as written, untouched
            output = parse_row(value)
        elif isinstance(value, list):
            output = [v if isinstance(v, str) else _dump(v) for v in value]
        else:
            output = [value if isinstance(value, str) else _dump(value)]
        row = parse_row(_text(source)) + output if self.join else output
        return format_row(_apply_row(self.output_filter, row, "OutputFilter"))

    def _combine_json(self, source: bytes, value: Any) -> str:
        if self.join:
            record = _json(source)
            if isinstance(record, dict):
                joined: Any = {**record, "SageMakerOutput": value}
            else:
                joined = {"SageMakerInput": record, "SageMakerOutput": value}
        else:
            joined = value
        return _dump(_apply(self.output_filter, joined, "OutputFilter"))


def _apply(path: JsonPath, value: Any, label: str) -> Any:
    try:
        return path.apply(value)
    except FilterError as exc:
        raise RecordError(f"{label} {exc}") from None


def _apply_row(path: JsonPath, row: list[str], label: str) -> list[str]:
    try:
        return path.apply_row(row)
    except FilterError as exc:
        raise RecordError(f"{label} {exc}") from None


def split_response(body: bytes, response_format: str | None, count: int) -> list[Any]:
    """One output per record: CSV lines (as text), JSON values, or text lines.

    A single record's output is the whole response. For several records the response must
    have one line per record, or (JSON) be an array of one element per record, or an object
    whose only member is such an array (`{"predictions": [...]}`)."""
    text = _text(body, "the response")
    if response_format == JSON:
        if count == 1:
            return [_json_value(text, "the response")]
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) == count:
            try:
                return [json.loads(line) for line in lines]
            except ValueError:
                pass
        value = _json_value(text, "the response")
        if isinstance(value, dict) and len(value) == 1:
            value = next(iter(value.values()))
        if isinstance(value, list) and len(value) == count:
            return value
        found = len(value) if isinstance(value, list) else 1
        raise RecordError(_mismatch(found, count, "a JSON array or JSON lines"))
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if count == 1:
        return ["\n".join(lines)]
    if len(lines) != count:
        raise RecordError(_mismatch(len(lines), count, "one line per record"))
    return [line.rstrip("\r") for line in lines]


def _mismatch(found: int, count: int, shape: str) -> str:
    outputs = "output" if found == 1 else "outputs"
    return (
        f"the model returned {found} {outputs} for {count} records; JoinSource and "
        f"OutputFilter need one output per record ({shape})"
    )


def _text(data: bytes, what: str = "the record") -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"{what} is not UTF-8 text: {exc}") from None


def _json(data: bytes) -> Any:
    return _json_value(_text(data), "the record")


def _json_value(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise RecordError(f"{what} is not valid JSON: {exc}") from None
