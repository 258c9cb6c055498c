"""Decoding a JSON request body the way AWS's JSON protocols accept it, and nothing more.

Python's `json` takes more than JSON: `NaN` and `Infinity`, numbers that overflow to infinity,
escapes of unpaired UTF-16 surrogates (strings that cannot be encoded again), and nesting deep
enough to exhaust the stack. Each would travel on into records, weights or environment
variables, or end as a 500; here each is a `SerializationException`, as AWS answers it.
"""

from __future__ import annotations

import json
import math
import re
from typing import NoReturn

from sabio.errors import SerializationError

# An escaped surrogate; only then can a decoded string hold an unpaired one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_json(body: bytes) -> object:
    """The value of a JSON request body (an empty body is `{}`)."""
    try:
        value = json.loads(body or b"{}", parse_constant=_constant, parse_float=_finite)
    except RecursionError:
        raise SerializationError("The request body is nested too deeply.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise SerializationError(f"The request body is not valid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(body):
        try:
            json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise SerializationError(
                "The request body is not valid JSON: it escapes an unpaired UTF-16 surrogate."
            ) from None
    return value


def _constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:40]} is out of range")
    return number
