"""The JSONPath subset batch transform's `InputFilter` and `OutputFilter` accept.

SageMaker supports `$`, `.name`, `.*` / `[*]`, `['a','b']`, `[n]`, `[n,m]` (negative indexes
count from the end), `[start:end]` and unions such as `[0,5:]`. Its documentation reads slices
with an *inclusive* end (`$[1:4]` is "the second through fifth columns"), and so does Sabio.
Anything else (`..`, `[?(...)]`, `[(...)]`, slice steps) is refused with a message saying which
part is unsupported. CSV rows are JSON arrays of their fields, so only index paths apply to them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

SUPPORTED = "$, .name, .*, ['name','name'], [n], [n,m], negative indexes and [start:end]"
_NAME = re.compile(r"[A-Za-z0-9_\-$@]+")
_INT = re.compile(r"-?\d+")


class JsonPathError(ValueError):
    """The expression is not valid or not in the supported subset."""


class FilterError(ValueError):
    """The expression does not apply to a record (a missing attribute, an index out of range)."""


@dataclass(frozen=True)
class Key:
    name: str


@dataclass(frozen=True)
class Keys:
    names: tuple[str, ...]


@dataclass(frozen=True)
class Wildcard:
    pass


@dataclass(frozen=True)
class Index:
    value: int


@dataclass(frozen=True)
class Slice:
    start: int | None
    end: int | None  # inclusive, as SageMaker documents it

    def indexes(self, length: int) -> range:
        start = 0 if self.start is None else self.start
        if start < 0:
            start += length
        start = min(max(start, 0), length)
        if self.end is None:
            stop = length
        else:
            stop = self.end + 1 if self.end >= 0 else self.end + 1 + length
            stop = min(max(stop, 0), length)
        return range(start, max(start, stop))


@dataclass(frozen=True)
class Union:
    """`[0,2]`, `[1:3]` or `[0,5:]`: indexes and slices of one array, in the order given."""

    items: tuple[Index | Slice, ...]


Step = Key | Keys | Wildcard | Index | Union


@dataclass(frozen=True)
class JsonPath:
    text: str
    steps: tuple[Step, ...]

    @property
    def is_root(self) -> bool:
        return not self.steps

    @property
    def by_name(self) -> bool:
        """Whether a step selects object attributes (not possible on CSV rows)."""
        return any(isinstance(step, Key | Keys) for step in self.steps)

    def apply(self, value: Any) -> Any:
        for step in self.steps:
            value = _apply(step, value, self.text)
        return value

    def apply_row(self, row: list[str]) -> list[str]:
        """A CSV row through the path: always a row (a single field becomes a row of one)."""
        selected = self.apply(row)
        if isinstance(selected, list):
            return [v if isinstance(v, str) else _csv_field(v) for v in selected]
        return [selected if isinstance(selected, str) else _csv_field(selected)]


ROOT = JsonPath("$", ())


def _csv_field(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def parse(text: str | None, where: str = "JSONPath") -> JsonPath:
    """Compile an expression; raises JsonPathError naming `where` and the unsupported part."""
    if text is None or text.strip() in ("", "$"):
        return ROOT
    source = text.strip()
    if not source.startswith("$"):
        raise JsonPathError(f"{where} '{text}' must start with $.")
    steps: list[Step] = []
    position = 1
    while position < len(source):
        if source.startswith("..", position):
            raise _unsupported(where, text, "recursive descent (..)")
        char = source[position]
        if char == ".":
            position += 1
            if position < len(source) and source[position] == "[":
                continue
            if source.startswith("*", position):
                steps.append(Wildcard())
                position += 1
                continue
            match = _NAME.match(source, position)
            if match is None:
                raise JsonPathError(
                    f"{where} '{text}': expected an attribute name after '.' at position "
                    f"{position}."
                )
            steps.append(Key(match.group()))
            position = match.end()
        elif char == "[":
            end = _closing_bracket(source, position, where, text)
            steps.append(_bracket(source[position + 1 : end].strip(), where, text))
            position = end + 1
        else:
            raise JsonPathError(
                f"{where} '{text}': unexpected '{char}' at position {position}; supported: "
                f"{SUPPORTED}."
            )
    for step in steps[:-1]:
        if _selects_several(step):
            raise JsonPathError(
                f"{where} '{text}': a selection of several elements ({_describe(step)}) must "
                "be the last part of the path; selecting inside it is not supported."
            )
    return JsonPath(text, tuple(steps))


def _closing_bracket(source: str, start: int, where: str, text: str) -> int:
    quote: str | None = None
    for index in range(start + 1, len(source)):
        char = source[index]
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "]":
            return index
    raise JsonPathError(f"{where} '{text}': '[' at position {start} is never closed.")


def _bracket(inner: str, where: str, text: str) -> Step:
    if not inner:
        raise JsonPathError(f"{where} '{text}': empty brackets [].")
    if inner == "*":
        return Wildcard()
    if inner.startswith("?"):
        raise _unsupported(where, text, f"the filter expression [{inner}]")
    if inner.startswith("("):
        raise _unsupported(where, text, f"the script expression [{inner}]")
    if inner[0] in "'\"":
        names = _quoted_names(inner, where, text)
        return Key(names[0]) if len(names) == 1 else Keys(tuple(names))
    items: list[Index | Slice] = []
    for part in (p.strip() for p in inner.split(",")):
        if ":" in part:
            bounds = [b.strip() for b in part.split(":")]
            if len(bounds) > 2:
                raise _unsupported(where, text, f"the slice step in [{part}]")
            start, end = (_int_or_none(b, part, where, text) for b in bounds)
            items.append(Slice(start, end))
        elif _INT.fullmatch(part):
            items.append(Index(int(part)))
        else:
            raise JsonPathError(
                f"{where} '{text}': [{inner}] is neither indexes, a slice nor quoted names; "
                f"supported: {SUPPORTED}."
            )
    if len(items) == 1 and isinstance(items[0], Index):
        return items[0]
    return Union(tuple(items))


def _int_or_none(bound: str, part: str, where: str, text: str) -> int | None:
    if not bound:
        return None
    if not _INT.fullmatch(bound):
        raise JsonPathError(f"{where} '{text}': [{part}] is not a slice of whole numbers.")
    return int(bound)


def _quoted_names(inner: str, where: str, text: str) -> list[str]:
    names: list[str] = []
    position = 0
    while True:
        quote = inner[position] if position < len(inner) else ""
        if quote not in ("'", '"'):
            raise JsonPathError(f"{where} '{text}': [{inner}] mixes quoted names with others.")
        end = inner.find(quote, position + 1)
        names.append(inner[position + 1 : end])
        position = end + 1
        while position < len(inner) and inner[position] == " ":
            position += 1
        if position == len(inner):
            return names
        if inner[position] != ",":
            raise JsonPathError(f"{where} '{text}': expected ',' between names in [{inner}].")
        position += 1
        while position < len(inner) and inner[position] == " ":
            position += 1


def _unsupported(where: str, text: str, what: str) -> JsonPathError:
    return JsonPathError(f"{where} '{text}': {what} is not supported; Sabio supports {SUPPORTED}.")


def _selects_several(step: Step) -> bool:
    return isinstance(step, Keys | Wildcard | Union)


def _describe(step: Step) -> str:
    if isinstance(step, Keys):
        return "[" + ",".join(f"'{n}'" for n in step.names) + "]"
    if isinstance(step, Wildcard):
        return "*"
    if isinstance(step, Union):
        parts = []
        for item in step.items:
            if isinstance(item, Index):
                parts.append(str(item.value))
            else:
                start = "" if item.start is None else str(item.start)
                end = "" if item.end is None else str(item.end)
                parts.append(f"{start}:{end}")
        return "[" + ",".join(parts) + "]"
    return str(step)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return (
        "a number"
        if isinstance(value, int | float) and not isinstance(value, bool)
        else ("a boolean")
    )


def _apply(step: Step, value: Any, text: str) -> Any:
    if isinstance(step, Key):
        if not isinstance(value, dict):
            raise FilterError(f"{text}: '{step.name}' needs an object, found {_kind(value)}")
        if step.name not in value:
            raise FilterError(f"{text}: the record has no attribute '{step.name}'")
        return value[step.name]
    if isinstance(step, Keys):
        if not isinstance(value, dict):
            raise FilterError(f"{text}: {_describe(step)} needs an object, found {_kind(value)}")
        missing = [name for name in step.names if name not in value]
        if missing:
            raise FilterError(f"{text}: the record has no attribute '{missing[0]}'")
        return {name: value[name] for name in step.names}
    if isinstance(step, Wildcard):
        if isinstance(value, dict):
            return list(value.values())
        if isinstance(value, list):
            return list(value)
        raise FilterError(f"{text}: * needs an object or an array, found {_kind(value)}")
    if not isinstance(value, list):
        raise FilterError(f"{text}: an index needs an array, found {_kind(value)}")
    if isinstance(step, Index):
        return value[_checked(step.value, len(value), text)]
    selected: list[Any] = []
    for item in step.items:
        if isinstance(item, Index):
            selected.append(value[_checked(item.value, len(value), text)])
        else:
            selected.extend(value[i] for i in item.indexes(len(value)))
    return selected


def _checked(index: int, length: int, text: str) -> int:
    if -length <= index < length:
        return index
    raise FilterError(f"{text}: index {index} is out of range for {length} elements")
