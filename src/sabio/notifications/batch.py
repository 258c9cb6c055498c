"""PublishBatch: up to ten messages to one topic in one request.

The batch as a whole is refused (empty, more than ten entries, an `Id` repeated or malformed,
messages adding up to more than 256 KiB, an unknown topic) before anything is published; after
that each entry stands alone, and one that SNS would refuse in `Publish` is reported in
`Failed` while the others are delivered."""

from __future__ import annotations

import re
from typing import Any

from sabio.notifications.errors import (
    BatchEntryIdsNotDistinct,
    BatchRequestTooLong,
    EmptyBatchRequest,
    InvalidBatchEntryId,
    InvalidParameter,
    InvalidParameterValue,
    TooManyEntriesInBatchRequest,
)
from sabio.notifications.publishing import (
    MAX_MESSAGE_BYTES,
    Notifications,
    message_size,
    refuse_fifo_members,
)

MAX_ENTRIES = 10
_ENTRY_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")


def publish_batch(
    notifications: Notifications, topic_arn: str, entries: list[dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """`{"Successful": [{Id, MessageId}], "Failed": [{Id, Code, Message, SenderFault}]}`."""
    if not entries:
        raise EmptyBatchRequest("The batch request doesn't contain any entries.")
    if len(entries) > MAX_ENTRIES:
        raise TooManyEntriesInBatchRequest(
            "The batch request contains more entries than permissible."
        )
    notifications.topics.topic(topic_arn)
    ids = [str(entry.get("Id", "")) for entry in entries]
    if len(set(ids)) != len(ids):
        raise BatchEntryIdsNotDistinct("Two or more batch entries in the request have the same Id.")
    if not all(_ENTRY_ID.fullmatch(entry_id) for entry_id in ids):
        raise InvalidBatchEntryId(
            "The Id of a batch entry in a batch request doesn't abide by the specification."
        )
    total = sum(
        message_size(str(e.get("Message", "")), e.get("MessageAttributes") or {}) for e in entries
    )
    if total > MAX_MESSAGE_BYTES:
        raise BatchRequestTooLong(
            "The length of all the messages put together is more than the limit."
        )
    successful: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for entry_id, entry in zip(ids, entries, strict=True):
        try:
            message_id = _publish_entry(notifications, topic_arn, entry)
        except (InvalidParameter, InvalidParameterValue) as error:
            failed.append(
                {"Id": entry_id, "Code": error.code, "Message": error.message, "SenderFault": True}
            )
            continue
        successful.append({"Id": entry_id, "MessageId": message_id})
    return {"Successful": successful, "Failed": failed}


def _publish_entry(notifications: Notifications, topic_arn: str, entry: dict[str, Any]) -> str:
    refuse_fifo_members(entry)
    return notifications.publish_message(
        topic_arn,
        str(entry.get("Message", "")),
        subject=entry.get("Subject"),
        structure=entry.get("MessageStructure"),
        attributes=entry.get("MessageAttributes"),
    )
