"""Subscription filter policies: checked when set, applied when a message is published.

A policy is a JSON object. With the scope `MessageAttributes` (the default) each key names a
message attribute and holds a list of conditions; with `MessageBody` the keys follow the JSON
message body, nested as deep as it is. A message reaches the subscriber only when every key of
the policy matches, and a key matches when any one of its conditions does: an exact string,
number, boolean or null, or one of the operators `prefix`, `suffix`, `equals-ignore-case`,
`anything-but`, `numeric` and `exists`. A key absent from the message matches only
`{"exists": false}`. `"$or": [policy, ...]` matches when any of its policies does."""

from __future__ import annotations

import json
import math
from typing import Any

from sabio.notifications.errors import InvalidParameter

SCOPES = ("MessageAttributes", "MessageBody")
MAX_KEYS = 5
MAX_COMBINATIONS = 150
MAX_NUMBER = 1e9
_LOWER = (">", ">=")
_UPPER = ("<", "<=")
_OPERATORS = frozenset(
    {"prefix", "suffix", "equals-ignore-case", "anything-but", "numeric", "exists"}
)
_ABSENT = object()


def _invalid(reason: str) -> InvalidParameter:
    return InvalidParameter(f"Invalid parameter: FilterPolicy: {reason}")


def check(text: str, scope: str) -> None:
    """Raise SNS's `InvalidParameter` unless `text` is a filter policy valid in `scope`."""
    try:
        policy = json.loads(text)
    except ValueError:
        raise _invalid("failed to parse JSON.") from None
    if not isinstance(policy, dict):
        raise _invalid("Filter policy must be a JSON object")
    leaves: list[int] = []
    _check_object(policy, scope, leaves)
    if len(leaves) > MAX_KEYS:
        raise _invalid(f"Filter policy can not have more than {MAX_KEYS} keys")
    if math.prod(leaves) > MAX_COMBINATIONS:
        raise _invalid("Filter policy is too complex")


def _check_object(policy: dict[str, Any], scope: str, leaves: list[int]) -> None:
    for key, conditions in policy.items():
        if key == "$or":
            if not isinstance(conditions, list) or len(conditions) < 2:
                raise _invalid("$or must be an array of at least two filter policies")
            for alternative in conditions:
                if not isinstance(alternative, dict) or not alternative:
                    raise _invalid("$or must be an array of at least two filter policies")
                _check_object(alternative, scope, leaves)
            continue
        if isinstance(conditions, dict) and scope == "MessageBody":
            if not conditions:
                raise _invalid(f"Empty object for key {key}")
            _check_object(conditions, scope, leaves)
            continue
        if not isinstance(conditions, list):
            raise _invalid(f"Match value for key {key} must be an array of conditions")
        if not conditions:
            raise _invalid(f"Empty arrays are not allowed (key {key})")
        for condition in conditions:
            _check_condition(condition)
        leaves.append(len(conditions))


def _check_condition(condition: Any) -> None:
    if condition is None or isinstance(condition, (str, bool)):
        return
    if isinstance(condition, (int, float)):
        _check_number(condition, "Match value")
        return
    if not isinstance(condition, dict):
        raise _invalid("Match value must be String, number, true, false, or null")
    if len(condition) != 1:
        raise _invalid("Only one operator is allowed in each condition")
    [(operator, operand)] = condition.items()
    if operator not in _OPERATORS:
        raise _invalid(f"Unrecognized match type {operator}")
    if operator in ("prefix", "suffix", "equals-ignore-case"):
        if not isinstance(operand, str):
            raise _invalid(f"Value of {operator} must be a string")
    elif operator == "exists":
        if not isinstance(operand, bool):
            raise _invalid("exists match pattern must be either true or false.")
    elif operator == "numeric":
        _check_range(operand)
    else:
        _check_anything_but(operand)


def _check_anything_but(operand: Any) -> None:
    if isinstance(operand, dict):
        if len(operand) != 1 or next(iter(operand)) not in ("prefix", "suffix"):
            raise _invalid("Unsupported anything-but pattern")
        if not isinstance(next(iter(operand.values())), str):
            raise _invalid("Value of anything-but prefix must be a string")
        return
    values = operand if isinstance(operand, list) else [operand]
    if not values:
        raise _invalid("Empty arrays are not allowed in anything-but")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise _invalid("Inside anything but list, only strings and numbers are allowed")


def _check_range(operand: Any) -> None:
    if not isinstance(operand, list) or len(operand) not in (2, 4):
        raise _invalid("Value of numeric must be an array of 2 or 4 elements")
    operators = operand[0::2]
    for operator, value in zip(operators, operand[1::2], strict=True):
        if operator not in ("=", *_LOWER, *_UPPER):
            raise _invalid(f"Unrecognized numeric range operator: {operator}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _invalid(f"Value of {operator} must be numeric")
        _check_number(value, f"Value of {operator}")
    if len(operators) == 2 and not (operators[0] in _LOWER and operators[1] in _UPPER):
        raise _invalid("Bad numeric range operator")
    if len(operators) == 2 and operand[1] >= operand[3]:
        raise _invalid("Bottom must be less than top")


def _check_number(value: float, what: str) -> None:
    if not -MAX_NUMBER <= value <= MAX_NUMBER:
        raise _invalid(f"{what} must be between -1.0E9 and 1.0E9")


# Matching


def accepts(
    policy_text: str | None,
    scope: str | None,
    message: str,
    attributes: dict[str, dict[str, Any]],
) -> bool:
    """Whether a message (its text and its `MessageAttributes` as published) passes a
    subscription's filter policy; no policy accepts everything."""
    if not policy_text:
        return True
    policy = json.loads(policy_text)
    if scope == "MessageBody":
        try:
            body = json.loads(message)
        except ValueError:
            return False
        return isinstance(body, dict) and _object_matches(policy, body)
    return _object_matches(policy, _attribute_values(attributes))


def _attribute_values(attributes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each attribute as the value a policy compares: a string, a number, or a list for
    `String.Array`. Binary attributes exist but match no value."""
    values: dict[str, Any] = {}
    for name, attribute in attributes.items():
        data_type = str(attribute.get("DataType", ""))
        text = attribute.get("StringValue")
        if data_type.startswith("Number"):
            number = _number(text)
            values[name] = [] if number is None else number
        elif data_type.startswith("String.Array"):
            try:
                parsed = json.loads(str(text))
            except ValueError:
                parsed = text
            values[name] = parsed if isinstance(parsed, list) else [parsed]
        elif data_type.startswith("String"):
            values[name] = text
        else:
            values[name] = []
    return values


def _number(text: Any) -> float | None:
    try:
        number = float(str(text))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _object_matches(policy: dict[str, Any], values: dict[str, Any]) -> bool:
    for key, conditions in policy.items():
        if key == "$or":
            if not any(_object_matches(alternative, values) for alternative in conditions):
                return False
            continue
        value = values.get(key, _ABSENT) if isinstance(values, dict) else _ABSENT
        if isinstance(conditions, dict):
            if not isinstance(value, dict) or not _object_matches(conditions, value):
                return False
        elif not any(_condition_matches(c, value) for c in conditions):
            return False
    return True


def _condition_matches(condition: Any, value: Any) -> bool:
    if isinstance(condition, dict) and "exists" in condition:
        return (value is not _ABSENT) is bool(condition["exists"])
    if value is _ABSENT:
        return False
    candidates = value if isinstance(value, list) else [value]
    return any(_one_matches(condition, candidate) for candidate in candidates)


def _one_matches(condition: Any, value: Any) -> bool:
    if not isinstance(condition, dict):
        return _equal(condition, value)
    [(operator, operand)] = condition.items()
    if operator == "numeric":
        return _is_number(value) and _in_range(operand, float(value))
    if operator == "anything-but":
        return _anything_but(operand, value)
    if not isinstance(value, str):
        return False
    if operator == "prefix":
        return value.startswith(operand)
    if operator == "suffix":
        return value.endswith(operand)
    return value.lower() == str(operand).lower()


def _equal(condition: Any, value: Any) -> bool:
    if _is_number(condition):
        return _is_number(value) and float(condition) == float(value)
    if isinstance(condition, bool) or condition is None:
        return value is condition
    return isinstance(value, str) and value == condition


def _anything_but(operand: Any, value: Any) -> bool:
    if isinstance(operand, dict):
        [(operator, text)] = operand.items()
        if not isinstance(value, str):
            return False
        return not (value.startswith(text) if operator == "prefix" else value.endswith(text))
    excluded = operand if isinstance(operand, list) else [operand]
    return not any(_equal(item, value) for item in excluded)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _in_range(operand: list[Any], value: float) -> bool:
    for operator, bound in zip(operand[0::2], operand[1::2], strict=True):
        limit = float(bound)
        passed = {
            "=": value == limit,
            ">": value > limit,
            ">=": value >= limit,
            "<": value < limit,
            "<=": value <= limit,
        }[operator]
        if not passed:
            return False
    return True
