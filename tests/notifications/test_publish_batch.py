"""PublishBatch: each accepted entry is delivered as its own notification; a malformed batch
is refused whole, a bad entry alone."""

from __future__ import annotations

import uuid
from typing import Any

import botocore.exceptions
import pytest

ACCOUNT = "123456789012"


def refusal(sns: Any, topic: str, entries: list[dict[str, Any]]) -> tuple[str, str, int]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def test_publish_batch_delivers_each_entry(
    sns: Any, listener: Any, subscribe_confirmed: Any
) -> None:
    topic, arn, _ = subscribe_confirmed(sns, listener)
    response = sns.publish_batch(
        TopicArn=topic,
        PublishBatchRequestEntries=[
            {"Id": "first", "Message": "one"},
            {
                "Id": "second-2",
                "Message": "two",
                "Subject": "Second",
                "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "done"}},
            },
            {"Id": "empty", "Message": ""},
            {"Id": "bad_subject", "Message": "x", "Subject": "line\nbreak"},
        ],
    )
    assert [entry["Id"] for entry in response["Successful"]] == ["first", "second-2"]
    assert response["Failed"] == [
        {
            "Id": "empty",
            "Code": "InvalidParameter",
            "Message": "Invalid parameter: Empty message",
            "SenderFault": True,
        },
        {
            "Id": "bad_subject",
            "Code": "InvalidParameter",
            "Message": "Invalid parameter: Subject",
            "SenderFault": True,
        },
    ]
    ids = {entry["Id"]: entry["MessageId"] for entry in response["Successful"]}
    listener.wait_for(lambda got: len(got) == 3)
    delivered = {r.json()["MessageId"]: r.json() for r in listener.of_type("Notification")}
    assert set(delivered) == set(ids.values())
    assert delivered[ids["first"]]["Message"] == "one"
    assert "Subject" not in delivered[ids["first"]]
    second = delivered[ids["second-2"]]
    assert (second["Message"], second["Subject"]) == ("two", "Second")
    assert second["MessageAttributes"] == {"kind": {"Type": "String", "Value": "done"}}
    assert {r.headers["x-amz-sns-subscription-arn"] for r in listener.received[1:]} == {arn}


def test_malformed_batches_are_refused_whole(sns: Any) -> None:
    topic = sns.create_topic(Name=f"batch-{uuid.uuid4().hex[:8]}")["TopicArn"]
    one = {"Id": "a", "Message": "m"}
    assert refusal(sns, topic, []) == (
        "EmptyBatchRequest", "The batch request doesn't contain any entries.", 400
    )  # fmt: skip
    entries = [{"Id": f"m{n}", "Message": "m"} for n in range(11)]
    assert refusal(sns, topic, entries) == (
        "TooManyEntriesInBatchRequest",
        "The batch request contains more entries than permissible.",
        400,
    )
    assert refusal(sns, topic, [one, {"Id": "a", "Message": "again"}]) == (
        "BatchEntryIdsNotDistinct",
        "Two or more batch entries in the request have the same Id.",
        400,
    )
    for bad in ("message.id", "x" * 81):
        assert refusal(sns, topic, [{"Id": bad, "Message": "m"}])[0] == "InvalidBatchEntryId"
    half = "x" * (130 * 1024)
    assert refusal(sns, topic, [{"Id": "a", "Message": half}, {"Id": "b", "Message": half}]) == (
        "BatchRequestTooLong",
        "The length of all the messages put together is more than the limit.",
        400,
    )
    missing = f"arn:aws:sns:us-east-1:{ACCOUNT}:no-such-{uuid.uuid4().hex[:8]}"
    assert refusal(sns, missing, [one]) == ("NotFound", "Topic does not exist", 404)
    # Ten entries is the most a batch may hold.
    ten = sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries[:10])
    assert len(ten["Successful"]) == 10
    assert ten["Failed"] == []
