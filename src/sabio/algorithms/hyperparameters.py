"""Typed reading of a job's hyperparameters, which the API carries as strings.

Every bad value is a ``ClientError`` that names the hyperparameter, as SageMaker's built-in
algorithms report them; names an algorithm never reads are logged, not fatal.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from typing import overload

from sabio.algorithms.opt_ml import ClientError

logger = logging.getLogger("sabio.algorithms")

AUTO = "auto"
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def _platform_key(name: str) -> bool:
    """Keys SageMaker's SDKs and tuner add, which no algorithm treats as its own."""
    return name.startswith("sagemaker_") or name == "_tuning_objective_metric"


def _unquote(value: str) -> str:
    """SDKs that JSON-encode every value send ``"\\"binary:logistic\\""``; take the string."""
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(decoded, str):
            return decoded.strip()
    return text


def _bound_text(value: float) -> str:
    return f"{value:g}"


class Hyperparameters:
    """Reads each hyperparameter once, converting and range-checking it."""

    def __init__(self, raw: Mapping[str, str]) -> None:
        self.values = {name: _unquote(value) for name, value in raw.items()}
        self.read: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def _get(self, name: str) -> str | None:
        self.read.add(name)
        value = self.values.get(name)
        return value if value else None

    def text(self, name: str) -> str | None:
        """The value as given, or None when absent or empty."""
        return self._get(name)

    def required(self, name: str) -> str:
        value = self._get(name)
        if value is None:
            raise ClientError(f"Hyperparameter {name} is required")
        return value

    def is_auto(self, name: str) -> bool:
        """True when the hyperparameter is absent or ``auto``."""
        value = self._get(name)
        return value is None or value.lower() == AUTO

    @overload
    def choice(self, name: str, choices: Iterable[str], default: str) -> str: ...
    @overload
    def choice(self, name: str, choices: Iterable[str], default: None = None) -> str | None: ...
    def choice(self, name: str, choices: Iterable[str], default: str | None = None) -> str | None:
        value = self._get(name)
        if value is None:
            return default
        allowed = list(choices)
        if value not in allowed:
            raise ClientError(
                f"Hyperparameter {name}: {value!r} is not one of {', '.join(allowed)}"
            )
        return value

    @overload
    def integer(
        self, name: str, default: int, *, minimum: int | None = ..., maximum: int | None = ...
    ) -> int: ...
    @overload
    def integer(
        self,
        name: str,
        default: None = None,
        *,
        minimum: int | None = ...,
        maximum: int | None = ...,
    ) -> int | None: ...
    def integer(
        self,
        name: str,
        default: int | None = None,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        value = self._get(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ClientError(f"Hyperparameter {name}: {value!r} is not an integer") from None
        if not math.isfinite(number) or not number.is_integer():
            raise ClientError(f"Hyperparameter {name}: {value!r} is not an integer")
        result = int(number)
        if minimum is not None and result < minimum:
            raise ClientError(f"Hyperparameter {name}: {result} is less than {minimum}")
        if maximum is not None and result > maximum:
            raise ClientError(f"Hyperparameter {name}: {result} is greater than {maximum}")
        return result

    @overload
    def number(
        self,
        name: str,
        default: float,
        *,
        minimum: float | None = ...,
        maximum: float | None = ...,
        exclusive_minimum: bool = ...,
    ) -> float: ...
    @overload
    def number(
        self,
        name: str,
        default: None = None,
        *,
        minimum: float | None = ...,
        maximum: float | None = ...,
        exclusive_minimum: bool = ...,
    ) -> float | None: ...
    def number(
        self,
        name: str,
        default: float | None = None,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        exclusive_minimum: bool = False,
    ) -> float | None:
        value = self._get(name)
        if value is None:
            return default
        try:
            result = float(value)
        except ValueError:
            raise ClientError(f"Hyperparameter {name}: {value!r} is not a number") from None
        if not math.isfinite(result):
            raise ClientError(f"Hyperparameter {name}: {value!r} is not a finite number")
        if minimum is not None:
            if exclusive_minimum and result <= minimum:
                raise ClientError(
                    f"Hyperparameter {name}: {value} must be greater than {_bound_text(minimum)}"
                )
            if result < minimum:
                raise ClientError(
                    f"Hyperparameter {name}: {value} is less than {_bound_text(minimum)}"
                )
        if maximum is not None and result > maximum:
            raise ClientError(
                f"Hyperparameter {name}: {value} is greater than {_bound_text(maximum)}"
            )
        return result

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ClientError(f"Hyperparameter {name}: {value!r} is not true or false")

    def ignore(self, names: Iterable[str]) -> None:
        """Accept hyperparameters that change nothing here, saying so in the log."""
        for name in names:
            if name in self.values:
                self.read.add(name)
                logger.warning(
                    "Hyperparameter %s=%s has no effect in Sabio's implementation; ignoring it",
                    name,
                    self.values[name],
                )

    def warn_unread(self) -> None:
        """Log the hyperparameters nothing read (typos, or another algorithm's)."""
        for name in sorted(self.values):
            if name not in self.read and not _platform_key(name):
                logger.warning("Unknown hyperparameter %s; ignoring it", name)
