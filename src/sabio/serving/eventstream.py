"""Encoding AWS event stream messages (`application/vnd.amazon.eventstream`).

InvokeEndpointWithResponseStream answers with this binary framing, which botocore decodes
(`botocore/eventstream.py`). Each message is a prelude (total length, headers length, CRC32 of
those eight bytes), the headers, the payload and a CRC32 of everything before it. Only string
headers are needed here, so only they are encoded.
"""

from __future__ import annotations

import json
import struct
import zlib

CONTENT_TYPE = "application/vnd.amazon.eventstream"

_STRING = 7
_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")
_MAX_HEADER_VALUE = 0xFFFF


def _header(name: str, value: str) -> bytes:
    encoded_name = name.encode("utf-8")
    encoded_value = value.encode("utf-8")
    if len(encoded_name) > 0xFF or len(encoded_value) > _MAX_HEADER_VALUE:
        raise ValueError(f"event stream header {name!r} is too long")
    return (
        bytes((len(encoded_name),))
        + encoded_name
        + bytes((_STRING,))
        + struct.pack(">H", len(encoded_value))
        + encoded_value
    )


def message(headers: dict[str, str], payload: bytes) -> bytes:
    """One framed message with string-valued `headers` and `payload`."""
    encoded = b"".join(_header(name, value) for name, value in headers.items())
    total = _PRELUDE.size + _CRC.size + len(encoded) + len(payload) + _CRC.size
    prelude = _PRELUDE.pack(total, len(encoded))
    head = prelude + _CRC.pack(zlib.crc32(prelude)) + encoded + payload
    return head + _CRC.pack(zlib.crc32(head))


def event(event_type: str, payload: bytes, content_type: str = "application/octet-stream") -> bytes:
    """A modeled event, such as a `PayloadPart` whose payload is its `Bytes` member."""
    return message(
        {
            ":message-type": "event",
            ":event-type": event_type,
            ":content-type": content_type,
        },
        payload,
    )


def exception(exception_type: str, members: dict[str, str]) -> bytes:
    """A modeled exception event (`ModelStreamError`, `InternalStreamFailure`): botocore raises
    it as an `EventStreamError` carrying `exception_type` as its code."""
    return message(
        {
            ":message-type": "exception",
            ":exception-type": exception_type,
            ":content-type": "application/json",
        },
        json.dumps(members).encode(),
    )


def payload_part(data: bytes) -> bytes:
    return event("PayloadPart", data)
