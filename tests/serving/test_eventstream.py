"""The event stream encoder, checked against botocore's own decoder and response parser."""

from __future__ import annotations

import io
import json
from typing import Any

import botocore.session
import pytest
from botocore.eventstream import EventStream, EventStreamBuffer
from botocore.exceptions import EventStreamError

from sabio.serving import eventstream


class _Raw(io.BytesIO):
    """What botocore reads an event stream from: an object with `stream()`."""

    def stream(self, amt: int = 1024) -> Any:
        while chunk := self.read(amt):
            yield chunk


def _events(data: bytes) -> EventStream:
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    output = model.operation_model("InvokeEndpointWithResponseStream").output_shape
    parser = botocore.parsers.EventStreamJSONParser()
    return EventStream(
        _Raw(data), output.members["Body"], parser, "InvokeEndpointWithResponseStream"
    )


def test_messages_decode_with_botocore_and_checksums_hold():
    frames = eventstream.payload_part(b"hello") + eventstream.payload_part("wörld".encode())
    buffer = EventStreamBuffer()
    buffer.add_data(frames[:7])
    assert list(buffer) == []
    buffer.add_data(frames[7:])
    decoded = list(buffer)
    assert [m.payload for m in decoded] == [b"hello", "wörld".encode()]
    assert decoded[0].headers == {
        ":message-type": "event",
        ":event-type": "PayloadPart",
        ":content-type": "application/octet-stream",
    }
    corrupted = bytearray(eventstream.payload_part(b"x"))
    corrupted[-5] ^= 1
    broken = EventStreamBuffer()
    broken.add_data(bytes(corrupted))
    with pytest.raises(botocore.eventstream.ChecksumMismatch):
        list(broken)


def test_boto3_reads_payload_parts_and_raises_model_stream_error():
    data = (
        eventstream.payload_part(b"a" * 70000)
        + eventstream.payload_part(b"b")
        + eventstream.exception(
            "ModelStreamError", {"Message": "the model broke", "ErrorCode": "StreamBroken"}
        )
    )
    stream = iter(_events(data))
    assert next(stream) == {"PayloadPart": {"Bytes": b"a" * 70000}}
    assert next(stream) == {"PayloadPart": {"Bytes": b"b"}}
    with pytest.raises(EventStreamError) as raised:
        next(stream)
    assert raised.value.response["Error"] == {
        "Code": "ModelStreamError",
        "Message": "the model broke",
    }
    [frame] = list(_buffer(data))[2:]
    assert json.loads(frame.payload)["ErrorCode"] == "StreamBroken"


def test_exception_payload_is_json():
    [decoded] = list(_buffer(eventstream.exception("InternalStreamFailure", {"Message": "m"})))
    assert decoded.headers[":exception-type"] == "InternalStreamFailure"
    assert json.loads(decoded.payload) == {"Message": "m"}


def _buffer(data: bytes) -> EventStreamBuffer:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return buffer
