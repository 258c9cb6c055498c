"""Reading a training channel: every data file under its directory, as one labelled table.

SageMaker's built-in algorithms read CSV with the label in the first column and no header,
and XGBoost also LIBSVM (``label[:weight] index:value ...``) and Parquet. A malformed file is
a ``ClientError`` naming the file and line, since that is what the user has to fix.
"""

from __future__ import annotations

import csv
import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sabio.algorithms.opt_ml import ClientError

FloatArray = npt.NDArray[np.float64]

CSV = "text/csv"
LIBSVM = "text/libsvm"
PARQUET = "application/x-parquet"
RECORDIO_PROTOBUF = "application/x-recordio-protobuf"

_ALIASES = {
    "csv": CSV,
    CSV: CSV,
    "libsvm": LIBSVM,
    LIBSVM: LIBSVM,
    "text/x-libsvm": LIBSVM,
    "parquet": PARQUET,
    PARQUET: PARQUET,
    "recordio-protobuf": RECORDIO_PROTOBUF,
    RECORDIO_PROTOBUF: RECORDIO_PROTOBUF,
}
_SNIPPET = 60
_SNIFF_BYTES = 4096


@dataclass(frozen=True)
class Dataset:
    """One channel's rows: ``features`` is a dense float64 array or a SciPy CSR matrix."""

    channel: str
    features: Any
    labels: FloatArray
    weights: FloatArray | None = None

    @property
    def rows(self) -> int:
        return int(self.labels.shape[0])

    @property
    def columns(self) -> int:
        return int(self.features.shape[1])


def content_type(value: str | None, default: str) -> str:
    """The canonical media type of a channel's ``ContentType`` (``csv`` -> ``text/csv``, ...).

    Unknown types come back lower-cased, for the algorithm to refuse in its own words.
    """
    if not value or not value.strip():
        return default
    media, _, parameters = value.partition(";")
    media = media.strip().lower()
    canonical = _ALIASES.get(media, media)
    for parameter in parameters.split(";"):
        name, _, setting = parameter.partition("=")
        if canonical == CSV and name.strip().lower() == "label_size" and setting.strip() != "1":
            raise ClientError(
                f"ContentType {value!r}: label_size must be 1, the label being the first column"
            )
    return canonical


def channel_files(directory: Path) -> list[Path]:
    """Data files under ``directory``, recursively and sorted; hidden and ``_`` names skipped."""
    found = []
    for path in sorted(directory.rglob("*")):
        parts = path.relative_to(directory).parts
        if any(part.startswith((".", "_")) for part in parts):
            continue
        if path.is_file():
            found.append(path)
    return found


def _files(directory: Path, channel: str) -> list[Path]:
    files = channel_files(directory)
    if not files:
        raise ClientError(f'Channel "{channel}" has no data files')
    return files


def _where(channel: str, directory: Path, path: Path) -> str:
    return f'channel "{channel}" file {path.relative_to(directory).as_posix()}'


def _snippet(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "..."


def _is_blank(path: Path) -> bool:
    with path.open("rb") as handle:
        while chunk := handle.read(_SNIFF_BYTES):
            if chunk.strip():
                return False
    return True


def read_csv(
    directory: Path, channel: str, *, weights: bool = False, allow_missing: bool = False
) -> Dataset:
    """A channel of CSV files: label, then the weight when ``weights``, then the features.

    Empty fields are missing values (NaN) when ``allow_missing``, and an error otherwise.
    """
    first = 2 if weights else 1
    tables: list[tuple[Path, FloatArray]] = []
    for path in _files(directory, channel):
        table = _read_csv_file(path, _where(channel, directory, path), allow_missing)
        if table.shape[0]:
            tables.append((path, table))
    if not tables:
        raise ClientError(f'Channel "{channel}" has no rows of data')
    width = tables[0][1].shape[1]
    for path, table in tables:
        where = _where(channel, directory, path)
        if table.shape[1] != width:
            raise ClientError(
                f"{where} has {table.shape[1]} columns but "
                f"{tables[0][0].relative_to(directory).as_posix()} has {width}"
            )
        if table.shape[1] <= first:
            needs = "a label, a weight and" if weights else "a label and"
            raise ClientError(f"{where} has {table.shape[1]} column(s): it needs {needs} features")
        missing = np.flatnonzero(np.isnan(table[:, :first]).any(axis=1))
        if missing.size:
            what = "label or weight" if weights else "label"
            raise ClientError(f"{where}: row {int(missing[0]) + 1} has no {what}")
    data = np.vstack([table for _, table in tables])
    return Dataset(
        channel=channel,
        features=np.ascontiguousarray(data[:, first:]),
        labels=np.ascontiguousarray(data[:, 0]),
        weights=np.ascontiguousarray(data[:, 1]) if weights else None,
    )


def _read_csv_file(path: Path, where: str, allow_missing: bool) -> FloatArray:
    if _is_blank(path):
        return np.empty((0, 0), dtype=np.float64)
    try:
        loaded = np.loadtxt(
            path, delimiter=",", dtype=np.float64, ndmin=2, quotechar='"', encoding="utf-8"
        )
    except (ValueError, UnicodeDecodeError):
        # The fast reader gives up on empty fields and says little about bad ones.
        return _parse_csv_file(path, where, allow_missing)
    return np.asarray(loaded, dtype=np.float64)


def _parse_csv_file(path: Path, where: str, allow_missing: bool) -> FloatArray:
    rows: list[list[float]] = []
    width = 0
    first_line = 0
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                fields = next(csv.reader([line.strip()]))
                if not rows:
                    width, first_line = len(fields), number
                elif len(fields) != width:
                    raise ClientError(
                        f"{where} line {number} has {len(fields)} columns, but line "
                        f"{first_line} has {width}: {_snippet(line)!r}"
                    )
                rows.append(_csv_values(fields, f"{where} line {number}", allow_missing, line))
    except UnicodeDecodeError as exc:
        raise ClientError(f"{where} is not UTF-8 text: {exc}") from None
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), width)


def _csv_values(fields: list[str], where: str, allow_missing: bool, line: str) -> list[float]:
    values = []
    for column, field in enumerate(fields, 1):
        text = field.strip()
        if not text:
            if allow_missing:
                values.append(math.nan)
                continue
            raise ClientError(f"{where}, column {column} is empty: {_snippet(line)!r}")
        try:
            values.append(float(text))
        except ValueError:
            hint = ""
            if any(character.isalpha() for character in text):
                hint = " (the CSV must hold only numbers, without a header row)"
            raise ClientError(
                f"{where}, column {column}: {_snippet(text)!r} is not a number{hint}"
            ) from None
    return values


def read_libsvm(directory: Path, channel: str) -> Dataset:
    """A channel of LIBSVM files; column ``i`` is feature index ``i``, as XGBoost reads them."""
    sparse: Any = importlib.import_module("scipy.sparse")
    labels: list[float] = []
    weights: list[float | None] = []
    indptr = [0]
    indices: list[int] = []
    values: list[float] = []
    for path in _files(directory, channel):
        where = _where(channel, directory, path)
        try:
            with path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    tokens = line.partition("#")[0].split()
                    if not tokens:
                        continue
                    label, weight = _libsvm_head(tokens[0], f"{where} line {number}", line)
                    labels.append(label)
                    weights.append(weight)
                    for token in tokens[1:]:
                        key, separator, value = token.partition(":")
                        if key == "qid":
                            continue
                        index, number_value = _libsvm_pair(
                            key, separator, value, f"{where} line {number}", line
                        )
                        indices.append(index)
                        values.append(number_value)
                    indptr.append(len(indices))
        except UnicodeDecodeError as exc:
            raise ClientError(f"{where} is not UTF-8 text: {exc}") from None
    if not labels:
        raise ClientError(f'Channel "{channel}" has no rows of data')
    width = max(indices) + 1 if indices else 1
    matrix = sparse.csr_matrix(
        (np.asarray(values, dtype=np.float64), np.asarray(indices), np.asarray(indptr)),
        shape=(len(labels), width),
    )
    given = [w for w in weights if w is not None]
    return Dataset(
        channel=channel,
        features=matrix,
        labels=np.asarray(labels, dtype=np.float64),
        weights=np.asarray([1.0 if w is None else w for w in weights]) if given else None,
    )


def _libsvm_head(token: str, where: str, line: str) -> tuple[float, float | None]:
    label, separator, weight = token.partition(":")
    try:
        return float(label), float(weight) if separator else None
    except ValueError:
        raise ClientError(
            f"{where}: {_snippet(token)!r} is not a label (LIBSVM lines are "
            f"'label[:weight] index:value ...'): {_snippet(line)!r}"
        ) from None


def _libsvm_pair(key: str, separator: str, value: str, where: str, line: str) -> tuple[int, float]:
    try:
        if not separator:
            raise ValueError
        index, number = int(key), float(value)
    except ValueError:
        raise ClientError(
            f"{where}: expected index:value pairs after the label: {_snippet(line)!r}"
        ) from None
    if index < 0:
        raise ClientError(f"{where}: feature index {index} is negative")
    return index, number


def read_parquet(directory: Path, channel: str) -> Dataset:
    """A channel of Parquet files, the label in the first column (needs pandas and pyarrow)."""
    try:
        pandas: Any = importlib.import_module("pandas")
    except ImportError:
        raise ClientError(
            f'Channel "{channel}" is Parquet, which needs pandas and pyarrow in the image\'s '
            "environment; use text/csv or text/libsvm"
        ) from None
    tables = []
    for path in _files(directory, channel):
        try:
            frame = pandas.read_parquet(path)
        except Exception as exc:
            raise ClientError(f"{_where(channel, directory, path)}: {exc}") from exc
        tables.append(np.asarray(frame.to_numpy(dtype=np.float64), dtype=np.float64))
    data = np.vstack(tables)
    if data.shape[1] < 2:
        raise ClientError(f'Channel "{channel}" needs a label column and features')
    return Dataset(
        channel=channel,
        features=np.ascontiguousarray(data[:, 1:]),
        labels=np.ascontiguousarray(data[:, 0]),
    )
