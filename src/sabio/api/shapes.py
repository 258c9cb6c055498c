"""Check requests against botocore's service model and trim responses to it.

botocore validates little on the client side, so the server repeats SageMaker's own checks and
words each failure the way SageMaker does: SDKs and users see these messages verbatim.
"""

from __future__ import annotations

import base64
import binascii
import functools
import importlib
import json
import math
import re
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.model import OperationModel, Shape

from sabio.errors import SerializationError, ValidationError

MAX_REPORTED = 10
"""SageMaker counts every violation but spells out only the first few."""

_VALUE_CHARS = 100
_INT_LIMITS = {"integer": 2**31, "long": 2**63}
_NUMBERS = frozenset({"integer", "long", "float", "double"})

Matcher = Callable[[str], object]


def validate_input(operation: OperationModel, params: object) -> dict[str, Any]:
    """Validate a parsed JSON 1.1 request body and return it with timestamps as epoch floats.

    Nulls count as absent and are dropped; members the model does not declare pass through.
    """
    if not isinstance(params, dict):
        raise SerializationError("Start of structure or map found where not expected.")
    shape = operation.input_shape
    if shape is None:
        return dict(params)
    errors: list[str] = []
    checked = _check_structure(shape, params, "", errors)
    if errors:
        noun = "error" if len(errors) == 1 else "errors"
        detail = "; ".join(errors[:MAX_REPORTED])
        raise ValidationError(f"{len(errors)} validation {noun} detected: {detail}")
    return checked


def shape_output(operation: OperationModel, data: Mapping[str, Any]) -> dict[str, Any]:
    """Keep only what the output shape declares, drop Nones and turn times into epoch floats."""
    shape = operation.output_shape
    if shape is None:
        return {}
    return _shape_structure(shape, data)


def missing_required_output(operation: OperationModel, data: Mapping[str, Any]) -> list[str]:
    """Dotted paths (0-based list indexes) of required output members that `data` lacks."""
    shape = operation.output_shape
    missing: list[str] = []
    if shape is not None:
        _find_missing(shape, data, "", missing)
    return missing


# Validation


def _check(shape: Shape, value: Any, path: str, errors: list[str]) -> Any:
    """Validate one value, appending violations; return it normalized."""
    if value is None:
        errors.append(_violation(shape, None, path, "Member must not be null"))
        return None
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            errors.append(_violation(shape, value, path, "Member must be of type structure"))
            return value
        return _check_structure(shape, value, path, errors)
    if kind == "list":
        if not isinstance(value, list):
            errors.append(_violation(shape, value, path, "Member must be of type list"))
            return value
        _check_size(shape, value, path, errors)
        return [
            _check(shape.member, item, f"{path}.{index}.member", errors)
            for index, item in enumerate(value, 1)
        ]
    if kind == "map":
        if not isinstance(value, dict):
            errors.append(_violation(shape, value, path, "Member must be of type map"))
            return value
        return _check_map(shape, value, path, errors)
    problems = _scalar_problems(shape, value)
    for problem in problems:
        errors.append(_violation(shape, value, path, problem))
    if kind == "timestamp" and not problems:
        return _epoch(value)
    return value


def _check_structure(
    shape: Shape, value: dict[str, Any], path: str, errors: list[str]
) -> dict[str, Any]:
    checked = dict(value)
    required = shape.required_members
    present = 0
    for name, member in shape.members.items():
        item = value.get(name)
        if item is None:
            checked.pop(name, None)
            if name in required:
                errors.append(
                    _violation(member, None, _join(path, name), "Member must not be null")
                )
            continue
        present += 1
        checked[name] = _check(member, item, _join(path, name), errors)
    is_union = getattr(shape, "is_union", False) or shape.metadata.get("union", False)
    if is_union and present != 1:
        errors.append(_violation(shape, value, path, "Member must have exactly one member set"))
    return checked


def _check_map(shape: Shape, value: dict[Any, Any], path: str, errors: list[str]) -> dict[Any, Any]:
    _check_size(shape, value, path, errors)
    key_problems: list[str] = []
    checked: dict[Any, Any] = {}
    for key, item in value.items():
        for problem in _scalar_problems(shape.key, key):
            if problem not in key_problems:
                key_problems.append(problem)
        checked[key] = _check(shape.value, item, f"{path}.{key}", errors)
    if key_problems:
        constraint = f"Map keys must satisfy constraint: [{', '.join(key_problems)}]"
        errors.append(_violation(shape, value, path, constraint))
    return checked


def _check_size(
    shape: Shape, value: list[Any] | dict[Any, Any], path: str, errors: list[str]
) -> None:
    for problem in _bounds(shape.metadata, len(value), "length"):
        errors.append(_violation(shape, value, path, problem))


def _scalar_problems(shape: Shape, value: Any) -> list[str]:
    """Constraint phrases a scalar breaks, without the `Value ... at ...` framing."""
    kind = shape.type_name
    if not _is_type(kind, value):
        return [f"Member must be of type {kind}"]
    meta = shape.metadata
    if kind in _NUMBERS:
        return _bounds(meta, value, "value")
    if kind != "string":
        return []
    problems = _bounds(meta, len(value), "length")
    pattern = meta.get("pattern")
    if pattern:
        matcher = _matcher(pattern)
        if matcher is not None and matcher(value) is None:
            shown = pattern if pattern.startswith("^") else f"^{pattern}"
            problems.append(f"Member must satisfy regular expression pattern: {shown}")
    allowed = meta.get("enum")
    if allowed and value not in allowed:
        problems.append(f"Member must satisfy enum value set: [{', '.join(allowed)}]")
    return problems


def _bounds(meta: Mapping[str, Any], measure: float, what: str) -> list[str]:
    problems = []
    low, high = meta.get("min"), meta.get("max")
    if low is not None and measure < low:
        problems.append(f"Member must have {what} greater than or equal to {low}")
    if high is not None and measure > high:
        problems.append(f"Member must have {what} less than or equal to {high}")
    return problems


def _is_type(kind: str, value: Any) -> bool:
    if isinstance(value, bool):
        return kind == "boolean"
    if kind == "string":
        return isinstance(value, str)
    if kind in _INT_LIMITS:
        limit = _INT_LIMITS[kind]
        return isinstance(value, int) and -limit <= value < limit
    if kind in _NUMBERS:
        return isinstance(value, int | float)
    if kind == "boolean":
        return False
    if kind == "timestamp":
        return _epoch(value) is not None
    if kind == "blob":
        return isinstance(value, str) and _is_base64(value)
    return True


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _epoch(value: Any) -> float | None:
    """Epoch seconds from a number, ISO-8601 string or datetime (naive means UTC); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an integer too large for a float: no time at all
            return None
        return seconds if math.isfinite(seconds) else None
    moment: datetime
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@functools.cache
def _matcher(pattern: str) -> Matcher | None:
    """Whole-value matcher for one of the model's Java regexes; None if we cannot compile it.

    ASCII mode because Java's `\\w`, `\\d` and `\\s` are ASCII-only by default.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return re.compile(pattern, re.ASCII).fullmatch
        except (re.error, Warning):
            pass
        try:
            module = importlib.import_module("regex")
        except ImportError:
            return None
        try:
            matcher: Matcher = module.compile(pattern).fullmatch
        except (module.error, Warning):
            return None
        return matcher


def _violation(shape: Shape, value: Any, path: str, constraint: str) -> str:
    if shape.metadata.get("sensitive"):
        return f"Value at '{path}' failed to satisfy constraint: {constraint}"
    if value is None:
        return f"Value null at '{path}' failed to satisfy constraint: {constraint}"
    return f"Value '{_render(value)}' at '{path}' failed to satisfy constraint: {constraint}"


def _render(value: Any) -> str:
    if value is None or isinstance(value, bool):
        text = json.dumps(value)
    elif isinstance(value, dict | list):
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    else:
        text = str(value)
    return text[:_VALUE_CHARS]


def _join(path: str, name: str) -> str:
    """AWS names members in paths with their first letter lower-cased."""
    field = name[:1].lower() + name[1:]
    return f"{path}.{field}" if path else field


# Output


def _shape_structure(shape: Shape, data: Mapping[str, Any]) -> dict[str, Any]:
    members = shape.members
    shaped: dict[str, Any] = {}
    for name, value in data.items():
        member = members.get(name)
        if member is not None and value is not None:
            shaped[name] = _shape_value(member, value)
    return shaped


def _shape_value(shape: Shape, value: Any) -> Any:
    kind = shape.type_name
    if kind == "structure":
        return _shape_structure(shape, value) if isinstance(value, Mapping) else value
    if kind == "list":
        if not isinstance(value, list | tuple):
            return value
        member = shape.member
        return [_shape_value(member, item) for item in value]
    if kind == "map":
        if not isinstance(value, Mapping):
            return value
        inner = shape.value
        return {key: _shape_value(inner, item) for key, item in value.items() if item is not None}
    if kind == "timestamp":
        seconds = _epoch(value)
        return value if seconds is None else seconds
    if kind == "blob" and isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    return value


def _find_missing(shape: Shape, value: Any, path: str, missing: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure" and isinstance(value, Mapping):
        required = shape.required_members
        for name, member in shape.members.items():
            child = value.get(name)
            where = f"{path}.{name}" if path else name
            if child is None:
                if name in required:
                    missing.append(where)
            else:
                _find_missing(member, child, where, missing)
    elif kind == "list" and isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _find_missing(shape.member, item, f"{path}.{index}", missing)
    elif kind == "map" and isinstance(value, Mapping):
        for key, item in value.items():
            _find_missing(shape.value, item, f"{path}.{key}", missing)
