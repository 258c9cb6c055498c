"""CloudWatch Logs filter patterns, as FilterLogEvents takes them."""

from __future__ import annotations

import re
from collections.abc import Callable

from sabio.errors import InvalidParameterError


class FilterPattern:
    """CloudWatch's term filter patterns, matched case-sensitively anywhere in a message.

    Supported: `ERROR` and `"exact phrase"` (all must appear), `?ERROR ?WARN` (at least one),
    `-DEBUG` (must not appear), `%regex%`. Not supported: JSON patterns (`{ $.level = ... }`)
    and space-delimited patterns (`[ip, user, ...]`); those are rejected, not misread.
    """

    _TOKEN = re.compile(r'\s*([?-]?)("(?:[^"\\]|\\.)*"|%(?:[^%\\]|\\.)+%|[^\s"]+)')

    def __init__(self, pattern: str | None) -> None:
        self.required: list[Callable[[str], bool]] = []
        self.optional: list[Callable[[str], bool]] = []
        self.excluded: list[Callable[[str], bool]] = []
        text = (pattern or "").strip()
        if not text:
            return
        if text[0] in "{[":
            kind = "JSON" if text[0] == "{" else "space-delimited"
            raise InvalidParameterError(
                f"Sabio does not support {kind} filter patterns yet; use terms, quoted phrases, "
                "?alternatives, -exclusions or %regex%."
            )
        position = 0
        while position < len(text):
            match = self._TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise InvalidParameterError(f"Invalid filter pattern: {pattern}")
            position = match.end()
            if not text[position:].strip():
                position = len(text)
            sign, term = match.groups()
            test = _term_test(term, pattern or "")
            {"?": self.optional, "-": self.excluded, "": self.required}[sign].append(test)

    def matches(self, message: str) -> bool:
        if not all(test(message) for test in self.required):
            return False
        if any(test(message) for test in self.excluded):
            return False
        return not self.optional or any(test(message) for test in self.optional)


def _term_test(term: str, pattern: str) -> Callable[[str], bool]:
    if term.startswith('"'):
        if len(term) < 2 or not term.endswith('"'):
            raise InvalidParameterError(f"Invalid filter pattern: {pattern}")
        phrase = re.sub(r"\\(.)", r"\1", term[1:-1])
        return lambda message: phrase in message
    if term.startswith("%") and term.endswith("%") and len(term) > 2:
        try:
            search = re.compile(term[1:-1]).search
        except re.error as exc:
            raise InvalidParameterError(f"Invalid regular expression {term}: {exc}") from None
        return lambda message: search(message) is not None
    return lambda message: term in message
