"""Requests derived from a botocore service model: valid ones, and ones broken in one place.

A malformed-request sweep needs a valid request to break, for every operation, without
retyping shapes by hand. `Requests` builds one from the model (enums, patterns, lengths and
ranges respected) with a seeded generator, and `mutations` breaks it one member at a time:
missing, of the wrong JSON type, too long, off-pattern, out of range, outside its enum. Each
mutation carries the path AWS names the member by, so a test can check the error points at it.
"""

from __future__ import annotations

import base64
import functools
import random
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import regex
from botocore.model import OperationModel, Shape

Matcher = Callable[[str], object]

_POOL = string.ascii_letters + string.digits + "-_./:=+@ "
_FALLBACKS = (
    "a",
    "abc",
    "a1",
    "x-1",
    "s3://bucket/key",
    "arn:aws:sagemaker:us-east-1:123456789012:model/m",
    "arn:aws:iam::123456789012:role/r",
    "arn:aws:lambda:us-east-1:123456789012:function:f",
    "ml.m5.large",
)
_OFF_PATTERN = ("not valid!", "~~~", " ", "-", "\n", "")
_MAX_DEPTH = 6
_WRONG_TYPES: dict[str, list[Any]] = {
    "string": [12345, ["a", "list"]],
    "integer": ["not-a-number", 1.5],
    "long": ["not-a-number"],
    "float": ["not-a-number"],
    "double": ["not-a-number"],
    "boolean": ["yes", 1],
    "timestamp": [{"an": "object"}, "not a time"],
    "blob": [12345, "not base64!"],
    "list": [{"an": "object"}, "text"],
    "map": [["a", "list"], 7],
    "structure": [["a", "list"], "text"],
}


@functools.cache
def matcher(pattern: str) -> Matcher | None:
    """Whole-value matcher for one of the model's Java regexes (`\\p{L}` needs `regex`)."""
    try:
        return re.compile(pattern, re.ASCII).fullmatch
    except re.error:
        pass
    try:
        return regex.compile(pattern).fullmatch
    except regex.error:
        return None


def matches(pattern: str | None, value: str) -> bool:
    check = matcher(pattern) if pattern else None
    return check is None or check(value) is not None


@dataclass(frozen=True)
class Mutation:
    """One request broken in one place: `where` is the member's AWS path (`a.b.1.member`)."""

    kind: str
    where: str
    body: dict[str, Any]


@dataclass(frozen=True)
class _Site:
    keys: tuple[str | int, ...]
    where: str
    shape: Shape
    required: bool


class Requests:
    """Valid request bodies for operations of one service model, reproducible from a seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def minimal(self, operation: OperationModel) -> dict[str, Any]:
        shape = operation.input_shape
        return {} if shape is None else self._structure(shape, 0, full=False)

    def full(self, operation: OperationModel) -> dict[str, Any]:
        shape = operation.input_shape
        return {} if shape is None else self._structure(shape, 0, full=True)

    def mutations(self, operation: OperationModel, base: dict[str, Any]) -> Iterator[Mutation]:
        """Every single-member break of `base` the model's constraints allow."""
        shape = operation.input_shape
        if shape is None:
            return
        for site in _sites(shape, base, (), ""):
            yield from self._break(site, base)

    # Valid values

    def value(self, shape: Shape, depth: int, full: bool) -> Any:
        kind = shape.type_name
        meta = shape.metadata
        if kind == "structure":
            return self._structure(shape, depth, full)
        if kind == "list":
            count = self._count(meta, full and depth < _MAX_DEPTH)
            return [self.value(shape.member, depth + 1, full) for _ in range(count)]
        if kind == "map":
            count = self._count(meta, full and depth < _MAX_DEPTH)
            result: dict[str, Any] = {}
            for _ in range(count * 3):
                if len(result) >= count:
                    break
                result[self.text(shape.key)] = self.value(shape.value, depth + 1, full)
            return result
        if kind == "string":
            return self.text(shape)
        if kind in ("integer", "long"):
            low = int(meta.get("min", 0))
            high = int(meta.get("max", low + 100))
            return self.rng.randint(low, min(high, low + 100))
        if kind in ("float", "double"):
            floor = float(meta.get("min", 0))
            ceiling = float(meta.get("max", floor + 1))
            return round(self.rng.uniform(floor, min(ceiling, floor + 1)), 3)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "timestamp":
            return 1_700_000_000 + self.rng.randint(0, 10_000_000)
        if kind == "blob":
            return base64.b64encode(self.rng.randbytes(8)).decode()
        return None

    def text(self, shape: Shape) -> str:
        meta = shape.metadata
        if meta.get("enum"):
            return str(self.rng.choice(meta["enum"]))
        low, high = int(meta.get("min", 0)), int(meta.get("max", 64))
        pattern = meta.get("pattern")
        if pattern:
            for _ in range(20):
                candidate = self._sample(pattern)
                fits = candidate is not None and low <= len(candidate) <= high
                if fits and candidate is not None and matches(pattern, candidate):
                    return candidate
            for candidate in _FALLBACKS:
                if low <= len(candidate) <= high and matches(pattern, candidate):
                    return candidate
        size = max(low, min(high, self.rng.randint(3, 12)))
        return "".join(self.rng.choice(string.ascii_letters) for _ in range(size))

    def _structure(self, shape: Shape, depth: int, full: bool) -> dict[str, Any]:
        members = shape.members
        is_union = getattr(shape, "is_union", False) or shape.metadata.get("union", False)
        if is_union:
            chosen = self.rng.choice(sorted(members))
            return {chosen: self.value(members[chosen], depth + 1, full)}
        required = set(shape.required_members)
        result: dict[str, Any] = {}
        for name, member in members.items():
            wanted = name in required or (
                full
                and depth < _MAX_DEPTH
                and self.rng.random() < 0.5
                and member.name != shape.name
            )
            if wanted:
                result[name] = self.value(member, depth + 1, full)
        return result

    def _count(self, meta: dict[str, Any], grow: bool) -> int:
        low = int(meta.get("min", 0))
        high = int(meta.get("max", low + 2))
        return min(high, low + (self.rng.randint(1, 2) if grow else 0))

    def _sample(self, pattern: str) -> str | None:
        try:
            parsed = sre_parse.parse(pattern)
        except re.error:
            return None
        out: list[str] = []
        try:
            self._emit(parsed, out)
        except LookupError:
            return None
        return "".join(out)

    def _emit(self, parsed: Any, out: list[str]) -> None:
        for op, arg in parsed:
            if op is sre.LITERAL:
                out.append(chr(arg))
            elif op is sre.NOT_LITERAL:
                out.append(self.rng.choice([c for c in _POOL.strip() if ord(c) != arg]))
            elif op is sre.ANY:
                out.append(self.rng.choice(string.ascii_letters))
            elif op is sre.IN:
                out.append(self.rng.choice(_members(tuple(arg))))
            elif op is sre.CATEGORY:
                out.append(self.rng.choice(_members(((op, arg),))))
            elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
                low, high, inner = arg
                top = low + 3 if high is sre.MAXREPEAT else min(high, low + 3)
                for _ in range(self.rng.randint(low, top)):
                    self._emit(inner, out)
            elif op is sre.SUBPATTERN:
                self._emit(arg[-1], out)
            elif op is sre.BRANCH:
                self._emit(self.rng.choice(arg[1]), out)
            elif op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
                continue
            else:
                raise LookupError(op)

    # Breaking one member

    def _break(self, site: _Site, base: dict[str, Any]) -> Iterator[Mutation]:
        shape, meta = site.shape, site.shape.metadata
        kind = shape.type_name

        def put(label: str, value: Any) -> Mutation:
            return Mutation(label, site.where, _replaced(base, site.keys, value))

        if site.required:
            yield Mutation("missing required", site.where, _replaced(base, site.keys, _ABSENT))
        for wrong in _WRONG_TYPES.get(kind, []):
            yield put(f"wrong type {type(wrong).__name__} for {kind}", wrong)
        if kind == "string":
            low, high = meta.get("min"), meta.get("max")
            if high is not None and high < 100_000:
                yield put("string over max length", "a" * (high + 1))
            if low:
                yield put("string under min length", "")
            pattern = meta.get("pattern")
            if pattern and matcher(pattern) is not None:
                for bad in _OFF_PATTERN:
                    fits = (low or 0) <= len(bad) <= (high if high is not None else len(bad))
                    if fits and not matches(pattern, bad):
                        yield put("string off pattern", bad)
                        break
            if meta.get("enum"):
                yield put("unknown enum value", "NotAnEnumValue")
        if kind in ("integer", "long", "float", "double"):
            if "max" in meta:
                yield put("number over max", meta["max"] + 1)
            if "min" in meta:
                yield put("number under min", meta["min"] - 1)
            if kind == "integer":
                yield put("integer over 32 bits", 2**31)
        if kind in ("list", "map"):
            current = _get(base, site.keys)
            if meta.get("min", 0) >= 1:
                yield put(f"empty {kind}", [] if kind == "list" else {})
            high = meta.get("max")
            if kind == "list" and high is not None and high <= 100 and current:
                yield put("list over max length", [current[0]] * (high + 1))
            if kind == "map" and current:
                bad_key = _bad_text(shape.key)
                if bad_key is not None:
                    first = next(iter(current.values()))
                    yield put("map key breaks its constraints", {**current, bad_key: first})


class _Absent:
    pass


_ABSENT = _Absent()


def _bad_text(shape: Shape) -> str | None:
    """A string the shape refuses by its length or pattern, if there is one."""
    meta = shape.metadata
    high = meta.get("max")
    if high is not None and high < 100_000:
        return "a" * (int(high) + 1)
    pattern = meta.get("pattern")
    if pattern and matcher(pattern) is not None:
        return next((bad for bad in _OFF_PATTERN if bad and not matches(pattern, bad)), None)
    return None


def _members(items: tuple[Any, ...]) -> list[str]:
    """Characters of `_POOL` a character class accepts; LookupError if none."""
    negate = any(op is sre.NEGATE for op, _ in items)
    chosen = [c for c in _POOL if _in_class(c, items) != negate]
    if not chosen:
        raise LookupError("empty class")
    return chosen


def _in_class(char: str, items: tuple[Any, ...]) -> bool:
    code = ord(char)
    for op, arg in items:
        if op is sre.LITERAL and code == arg:
            return True
        if op is sre.RANGE and arg[0] <= code <= arg[1]:
            return True
        if op is sre.CATEGORY and _in_category(char, arg):
            return True
    return False


def _in_category(char: str, category: Any) -> bool:
    digit = char in string.digits
    space = char in string.whitespace
    word = char in string.ascii_letters or digit or char == "_"
    table = {
        sre.CATEGORY_DIGIT: digit,
        sre.CATEGORY_NOT_DIGIT: not digit,
        sre.CATEGORY_SPACE: space,
        sre.CATEGORY_NOT_SPACE: not space,
        sre.CATEGORY_WORD: word,
        sre.CATEGORY_NOT_WORD: not word,
    }
    return bool(table.get(category, False))


def _sites(shape: Shape, value: Any, keys: tuple[str | int, ...], where: str) -> Iterator[_Site]:
    """Every member present in `value`, outermost first, with its AWS path."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        required = set(shape.required_members)
        for name, member in shape.members.items():
            field = name[:1].lower() + name[1:]
            path = f"{where}.{field}" if where else field
            if name in value:
                yield _Site((*keys, name), path, member, name in required)
                yield from _sites(member, value[name], (*keys, name), path)
    elif kind == "list" and isinstance(value, list):
        for index, item in enumerate(value):
            path = f"{where}.{index + 1}.member"
            yield _Site((*keys, index), path, shape.member, False)
            yield from _sites(shape.member, item, (*keys, index), path)
    elif kind == "map" and isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}"
            yield _Site((*keys, key), path, shape.value, False)
            yield from _sites(shape.value, item, (*keys, key), path)


def _get(body: Any, keys: tuple[str | int, ...]) -> Any:
    for key in keys:
        body = body[key]
    return body


def _replaced(body: dict[str, Any], keys: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A deep copy of `body` with the member at `keys` set to `value`, or removed."""

    def rebuild(node: Any, rest: tuple[str | int, ...]) -> Any:
        if not rest:
            return value
        head, tail = rest[0], rest[1:]
        if isinstance(node, list):
            copy_list = list(node)
            assert isinstance(head, int)
            copy_list[head] = rebuild(node[head], tail)
            return copy_list
        copy = dict(node)
        if not tail and value is _ABSENT:
            copy.pop(head)
        else:
            copy[head] = rebuild(node[head], tail)
        return copy

    result: dict[str, Any] = rebuild(body, keys)
    return result


def overlaid(base: Any, overlay: Any) -> Any:
    """`base` with `overlay` merged in, to pin the members a request must get right.

    None removes a member, a dict applies to each item of a list, and a key written `?Name`
    applies only when `base` already has `Name`.
    """
    if isinstance(overlay, dict) and isinstance(base, list):
        return [overlaid(item, overlay) for item in base]
    if not isinstance(overlay, dict):
        return overlay
    merged = dict(base) if isinstance(base, dict) else {}
    for key, value in overlay.items():
        name = key.removeprefix("?")
        if value is None:
            merged.pop(name, None)
        elif name != key and name not in merged:
            continue
        else:
            merged[name] = overlaid(merged.get(name), value)
    return merged
