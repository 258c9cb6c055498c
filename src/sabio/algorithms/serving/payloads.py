"""Request bodies of SageMaker's built-in algorithms, decoded into rows of features.

The formats are those of SageMaker's common inference data formats: CSV rows without the label,
LIBSVM lines, and JSON ``{"instances": [{"features": [...]}, ...]}`` (or plain lists of rows);
JSON Lines carries one instance per line. Errors carry the HTTP ``status_code`` the model
worker answers with.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
LIBSVM = "text/libsvm"
X_LIBSVM = "text/x-libsvm"
RECORDIO_PROTOBUF = "application/x-recordio-protobuf"


class RequestContext(Protocol):
    """The part of the worker's per-request context the handlers read."""

    @property
    def request_headers(self) -> Mapping[str, str]: ...


class InferenceError(Exception):
    """A request the model cannot answer; the worker replies with ``status_code``."""

    status_code = 400


class UnsupportedMediaType(InferenceError):
    status_code = 415


class NotAcceptable(InferenceError):
    status_code = 406


def media_type(value: str) -> str:
    """``"text/CSV; charset=utf-8"`` -> ``"text/csv"``."""
    return value.partition(";")[0].strip().lower()


def header(context: RequestContext | None, name: str) -> str | None:
    """A request header as the client sent it, or None when absent."""
    if context is None:
        return None
    value = context.request_headers.get(name)
    return value if value and value.strip() else None


def text(body: str | bytes) -> str:
    if isinstance(body, str):
        return body
    try:
        return bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InferenceError(f"The request body is not UTF-8 text: {exc}") from None


def _snippet(line: str) -> str:
    line = line.strip()
    return line if len(line) <= 60 else line[:60] + "..."


def csv_rows(body: str, *, allow_missing: bool) -> FloatArray:
    """CSV records, one per line; empty fields are NaN when ``allow_missing``."""
    lines = [line for line in body.splitlines() if line.strip()]
    if not lines:
        raise InferenceError("The request body has no records")
    try:
        return np.asarray(
            np.loadtxt(lines, delimiter=",", dtype=np.float64, ndmin=2, quotechar='"'),
            dtype=np.float64,
        )
    except ValueError:
        pass
    rows: list[list[float]] = []
    for number, line in enumerate(lines, 1):
        fields = next(csv.reader([line]))
        if rows and len(fields) != len(rows[0]):
            raise InferenceError(
                f"CSV record {number} has {len(fields)} values, record 1 has {len(rows[0])}"
            )
        values = []
        for field in fields:
            value = field.strip()
            if not value and allow_missing:
                values.append(math.nan)
                continue
            try:
                values.append(float(value))
            except ValueError:
                raise InferenceError(
                    f"CSV record {number}: {value!r} is not a number: {_snippet(line)!r}"
                ) from None
        rows.append(values)
    return np.asarray(rows, dtype=np.float64)


def _number(value: Any, allow_missing: bool) -> float:
    if value is None and allow_missing:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InferenceError(f"{value!r} is not a number")
    return float(value)


def _instance(item: Any, allow_missing: bool) -> list[float]:
    """One record: a list of numbers, ``{"features": [...]}`` or SageMaker's tensor form
    ``{"data": {"features": {"values": [...], "keys": [...], "shape": [n]}}}``."""
    if isinstance(item, dict):
        if "features" in item:
            item = item["features"]
        elif isinstance(item.get("data"), dict) and "features" in item["data"]:
            item = item["data"]["features"]
        if isinstance(item, dict):
            return _tensor(item, allow_missing)
    if not isinstance(item, list):
        raise InferenceError(
            'Each instance must be a list of numbers or {"features": [...]}, not '
            f"{type(item).__name__}"
        )
    return [_number(value, allow_missing) for value in item]


def _tensor(tensor: Mapping[str, Any], allow_missing: bool) -> list[float]:
    values = tensor.get("values")
    if not isinstance(values, list):
        raise InferenceError('A features tensor needs a "values" list')
    numbers = [_number(value, allow_missing) for value in values]
    keys = tensor.get("keys")
    if not keys:
        return numbers
    shape = tensor.get("shape")
    if not isinstance(keys, list) or len(keys) != len(numbers):
        raise InferenceError('A sparse features tensor needs as many "keys" as "values"')
    if not isinstance(shape, list) or len(shape) != 1 or not isinstance(shape[0], int):
        raise InferenceError('A sparse features tensor needs "shape": [number of features]')
    row = [0.0] * shape[0]
    for key, number in zip(keys, numbers, strict=True):
        if not isinstance(key, int) or not 0 <= key < shape[0]:
            raise InferenceError(f"Sparse key {key!r} is outside the shape {shape}")
        row[key] = number
    return row


def _table(rows: list[list[float]]) -> FloatArray:
    if not rows:
        raise InferenceError("The request has no instances")
    width = len(rows[0])
    for number, row in enumerate(rows, 1):
        if len(row) != width:
            raise InferenceError(
                f"Instance {number} has {len(row)} features, instance 1 has {width}"
            )
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), width)


def _load_json(body: str, what: str) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise InferenceError(f"The request body is not {what}: {exc}") from None


def json_rows(body: str, *, allow_missing: bool = False) -> FloatArray:
    """``{"instances": [...]}``, ``{"features": [...]}``, a list of rows or one row."""
    document = _load_json(body, "JSON")
    if isinstance(document, dict):
        if "instances" in document:
            instances = document["instances"]
            if not isinstance(instances, list):
                raise InferenceError('"instances" must be a list')
            return _table([_instance(item, allow_missing) for item in instances])
        return _table([_instance(document, allow_missing)])
    if isinstance(document, list):
        if document and all(not isinstance(v, list | dict) for v in document):
            return _table([_instance(document, allow_missing)])
        return _table([_instance(item, allow_missing) for item in document])
    raise InferenceError('Expected {"instances": [...]} or a list of rows')


def jsonlines_rows(body: str, *, allow_missing: bool = False) -> FloatArray:
    """One instance (``{"features": [...]}`` or a list) per line."""
    rows = []
    for line in body.splitlines():
        if line.strip():
            rows.append(_instance(_load_json(line, "JSON Lines"), allow_missing))
    return _table(rows)


def libsvm_rows(body: str) -> tuple[FloatArray, npt.NDArray[np.int64], npt.NDArray[np.int64], int]:
    """LIBSVM lines as CSR parts ``(values, indices, indptr, width)``; a label is optional."""
    values: list[float] = []
    indices: list[int] = []
    indptr = [0]
    for number, line in enumerate(body.splitlines(), 1):
        tokens = line.partition("#")[0].split()
        if not tokens:
            continue
        for position, token in enumerate(tokens):
            key, separator, value = token.partition(":")
            if not separator:
                if position == 0:
                    continue  # the label, which inference ignores
                raise InferenceError(f"LIBSVM line {number}: {token!r} is not index:value")
            if key == "qid":
                continue
            try:
                index, number_value = int(key), float(value)
            except ValueError:
                raise InferenceError(
                    f"LIBSVM line {number}: {token!r} is not index:value"
                ) from None
            if index < 0:
                raise InferenceError(f"LIBSVM line {number}: feature index {index} is negative")
            indices.append(index)
            values.append(number_value)
        indptr.append(len(indices))
    if len(indptr) == 1:
        raise InferenceError("The request body has no records")
    width = max(indices) + 1 if indices else 0
    return (
        np.asarray(values, dtype=np.float64),
        np.asarray(indices, dtype=np.int64),
        np.asarray(indptr, dtype=np.int64),
        width,
    )


def json_number(value: float) -> float | None:
    """A float JSON can carry: NaN and infinities become null."""
    return value if math.isfinite(value) else None
