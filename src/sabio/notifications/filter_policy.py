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

from sabio.notifications.errors import InvalidParameter, invalid

SCOPES = ("MessageAttributes", "MessageBody")
MAX_KEYS = 5
MAX_COMBINATIONS = 150
MAX_NUMBER = 1e9
_LOWER = (">", ">=")
_UPPER = ("<", "<=")
_STRING_OPERATORS = ("prefix", "suffix", "equals-ignore-case")
_OPERATORS = frozenset({*_STRING_OPERATORS, "anything-but", "numeric", "exists"})
_ABSENT = object()
_END = object()  # past the last item of a list, where SNS's parser reads the token `]`
NESTED_IN_ATTRIBUTES = (
    "Invalid parameter: Filter policy scope MessageAttributes does not support nested filter policy"
)


class _Refused(Exception):
    """Why SNS refuses a policy; `check` says where the policy was given."""


class _Number(float):
    """A JSON number that keeps its text: SNS quotes a misplaced number as it was written."""

    __slots__ = ("text",)
    text: str


def _json_number(text: str) -> _Number:
    number = _Number(text)
    number.text = text
    return number


def _not_json(text: str) -> None:
    raise ValueError(f"{text} is not JSON")


def check(text: str, scope: str, *, member: str) -> None:
    """Raise SNS's `InvalidParameter` unless `text` is a filter policy valid in `scope`.
    `member` is `Attributes` for Subscribe, whose errors SNS words `Invalid parameter:
    Attributes Reason: FilterPolicy: ...`, or `AttributeName` for SetSubscriptionAttributes
    (`Invalid parameter: FilterPolicy: ...`). SNS also appends its parser's position in the
    policy (`at [Source: ...; line: 1, column: 10]`) to some reasons; Sabio does not."""
    try:
        _check(text, scope)
    except _Refused as refused:
        reason = f"FilterPolicy: {refused}"
        if member == "Attributes":
            raise invalid(member, reason) from None
        raise InvalidParameter(f"Invalid parameter: {reason}") from None


def _check(text: str, scope: str) -> None:
    try:
        policy = json.loads(
            text, parse_int=_json_number, parse_float=_json_number, parse_constant=_not_json
        )
    except (ValueError, RecursionError):
        raise _Refused("failed to parse JSON.") from None
    if not isinstance(policy, dict):
        raise _Refused("Filter policy must be a JSON object")
    leaves: list[int] = []
    if _check_object(policy, 1, leaves, 0) and scope != "MessageBody":
        raise InvalidParameter(NESTED_IN_ATTRIBUTES)
    if len(leaves) > MAX_KEYS:
        raise _Refused(f"Filter policy can not have more than {MAX_KEYS} keys")
    if math.prod(leaves) > MAX_COMBINATIONS:
        raise _Refused("Filter policy is too complex")


def _check_object(policy: dict[str, Any], depth: int, leaves: list[int], level: int) -> bool:
    """Check one object of a policy, adding a weight per list of conditions to `leaves`: its
    length times how deep it is nested, as SNS counts combinations. Whether it nests."""
    if level > MAX_COMBINATIONS:
        # Deeper than any policy within the combination limit can be.
        raise _Refused("Filter policy is too complex")
    nested = False
    for key, conditions in policy.items():
        if key == "$or":
            if not isinstance(conditions, list) or len(conditions) < 2:
                raise _Refused("$or must be an array of at least two filter policies")
            for alternative in conditions:
                if not isinstance(alternative, dict) or not alternative:
                    raise _Refused("$or must be an array of at least two filter policies")
                nested |= _check_object(alternative, depth, leaves, level + 1)
            continue
        if isinstance(conditions, dict):
            if not conditions:
                raise _Refused(f"Empty object for key {key}")
            _check_object(conditions, depth + 1, leaves, level + 1)
            nested = True
            continue
        if not isinstance(conditions, list):
            raise _Refused(f'"{key}" must be an object or an array')
        if not conditions:
            raise _Refused(f"Empty arrays are not allowed (key {key})")
        for condition in conditions:
            _check_condition(condition)
        leaves.append(depth * len(conditions))
    return nested


def _check_condition(condition: Any) -> None:
    if condition is None or isinstance(condition, (str, bool)):
        return
    if isinstance(condition, float):
        _check_number(condition, "Match value")
        return
    if not isinstance(condition, dict):
        raise _Refused("Match value must be String, number, true, false, or null")
    if not condition:
        raise _Refused("Only one operator is allowed in each condition")
    operator, operand = next(iter(condition.items()))
    if operator not in _OPERATORS:
        raise _Refused(f"Unrecognized match type {operator}")
    if operator in _STRING_OPERATORS:
        if not isinstance(operand, str):
            raise _Refused(f"{operator} match pattern must be a string")
    elif operator == "exists":
        if not isinstance(operand, bool):
            raise _Refused("exists match pattern must be either true or false.")
    elif operator == "numeric":
        _check_range(operand)
    else:
        _check_anything_but(operand)
    if len(condition) > 1:
        raise _Refused("Only one key allowed in match expression")


def _check_anything_but(operand: Any) -> None:
    if isinstance(operand, dict):
        if not operand:
            raise _Refused("Unsupported anything-but pattern")
        operator, text = next(iter(operand.items()))
        if operator not in ("prefix", "suffix"):
            raise _Refused(f"Unsupported anything-but pattern: {operator}")
        if not isinstance(text, str):
            raise _Refused(f"{operator} match pattern must be a string")
        if len(operand) > 1:
            raise _Refused("Only one key allowed in match expression")
        return
    values = operand if isinstance(operand, list) else [operand]
    if not values:
        raise _Refused("Empty arrays are not allowed in anything-but")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (str, float)):
            raise _Refused("Inside anything but list, only strings and numbers are allowed")


def _check_range(operand: Any) -> None:
    """`["=", n]`, `[">" or ">=", n]`, `["<" or "<=", n]` or `[">" or ">=", n, "<" or "<=",
    m]`, read term by term as SNS reads them, so the first wrong term is the one named."""
    if not isinstance(operand, list):
        raise _Refused("Value of numeric must be an array of 2 or 4 elements")
    terms = [*operand, _END]
    operator = terms[0]
    if not isinstance(operator, str):
        raise _Refused(f"Invalid member in numeric match: {_token(operator)}")
    if operator == "=" or operator in _UPPER:
        _range_value(terms[1], "equals" if operator == "=" else operator, operator)
        if len(operand) > 2:
            raise _Refused("Too many elements in numeric expression")
        return
    if operator not in _LOWER:
        raise _Refused(f"Unrecognized numeric range operator: {operator}")
    bottom = _range_value(terms[1], operator, operator)
    if len(operand) == 2:
        return
    upper = terms[2]
    if not isinstance(upper, str):
        raise _Refused(f"Bad value in numeric range: {_token(upper)}")
    if upper not in _UPPER:
        raise _Refused(f"Bad numeric range operator: {upper}")
    top = _range_value(terms[3], upper, upper)
    if len(operand) > 4:
        raise _Refused("Too many terms in numeric range expression")
    if bottom >= top:
        raise _Refused("Bottom must be less than top")


def _range_value(term: Any, name: str, operator: str) -> float:
    if not isinstance(term, float):
        raise _Refused(f"Value of {name} must be numeric")
    _check_number(term, f"Value of {operator}")
    return term


def _token(term: Any) -> str:
    """A JSON value as SNS's parser names it: its text, or the token that starts it."""
    if term is _END:
        return "]"
    if isinstance(term, _Number):
        return term.text
    if isinstance(term, bool) or term is None:
        return json.dumps(term)
    if isinstance(term, dict):
        return "{"
    if isinstance(term, list):
        return "["
    return str(term)


def _check_number(value: float, what: str) -> None:
    if not -MAX_NUMBER <= value <= MAX_NUMBER:
        raise _Refused(f"{what} must be between -1.0E9 and 1.0E9")


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
