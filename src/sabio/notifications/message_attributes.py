"""Message attributes: checked as SNS checks them on Publish, sized toward the 256 KiB limit,
and written the way a Notification carries them (`{"Type": ..., "Value": ...}`).

SNS answers a bad attribute with `ParameterValueInvalid` and a sentence of its own, not with the
`Invalid parameter: ...` form of its other checks; clients match on both."""

from __future__ import annotations

import base64
import math
import re
from typing import Any

from sabio.notifications.errors import InvalidParameterValue

MAX_ATTRIBUTES = 10
MAX_NAME = 256
_NAME_CHARACTERS = re.compile(r"[A-Za-z0-9_.-]")
_TYPE = re.compile(r"(String|Number|Binary)(\.[A-Za-z0-9_.-]+)?")


def size(attributes: dict[str, dict[str, Any]]) -> int:
    """Each attribute's name, type and value count toward the message's size."""
    return sum(
        len(name.encode()) + sum(_size(part) for part in value.values())
        for name, value in attributes.items()
    )


def _size(value: Any) -> int:
    return len(value) if isinstance(value, bytes) else len(str(value).encode())


def check(attributes: dict[str, dict[str, Any]]) -> None:
    if len(attributes) > MAX_ATTRIBUTES:
        raise InvalidParameterValue(
            f"Number of message attributes [{len(attributes)}] exceeds the allowed maximum "
            f"[{MAX_ATTRIBUTES}]."
        )
    for name, value in attributes.items():
        _check_name(name)
        _check_value(name, value)


def _check_name(name: str) -> None:
    if not name or len(name) > MAX_NAME:
        raise InvalidParameterValue(
            f"Message attribute name must be 1 to {MAX_NAME} characters long."
        )
    if name.startswith("."):
        raise InvalidParameterValue(
            "Invalid message attribute name starting with character '.' was found."
        )
    if name.endswith("."):
        raise InvalidParameterValue(
            "Invalid message attribute name ending with character '.' was found."
        )
    for character in name:
        if not _NAME_CHARACTERS.fullmatch(character):
            raise InvalidParameterValue(
                f"Invalid non-alphanumeric character '#x{ord(character):X}' was found in the "
                "message attribute name. Can only include alphanumeric characters, hyphens, "
                "underscores, or dots."
            )
    if ".." in name:
        raise InvalidParameterValue("Message attribute name can not have successive '.' character.")


def _check_value(name: str, value: dict[str, Any]) -> None:
    data_type = str(value.get("DataType", ""))
    if not _TYPE.fullmatch(data_type):
        raise InvalidParameterValue(
            f"The message attribute '{name}' has an invalid message attribute type, "
            "the set of supported type prefixes is Binary, Number, and String."
        )
    field = "Binary" if data_type.startswith("Binary") else "String"
    if f"{field}Value" not in value:
        if not any(key.endswith("Value") for key in value):
            raise _empty(name, data_type)
        raise InvalidParameterValue(
            f"The message attribute '{name}' with type '{data_type}' must use field '{field}'."
        )
    if not value[f"{field}Value"]:
        raise _empty(name, data_type)
    if data_type.startswith("Number") and not _is_number(str(value["StringValue"])):
        raise InvalidParameterValue(f"Could not cast message attribute '{name}' value to number.")


def _empty(name: str, data_type: str) -> InvalidParameterValue:
    return InvalidParameterValue(
        f"The message attribute '{name}' must contain non-empty message attribute value for "
        f"message attribute type '{data_type}'."
    )


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def wire(attributes: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """As a Notification carries them; binary values in base64."""
    result = {}
    for name, value in attributes.items():
        data_type = str(value["DataType"])
        if data_type.startswith("Binary"):
            raw = value["BinaryValue"]
            text = base64.b64encode(raw if isinstance(raw, bytes) else str(raw).encode()).decode()
        else:
            text = str(value["StringValue"])
        result[name] = {"Type": data_type, "Value": text}
    return result
