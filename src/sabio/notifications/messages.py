"""The documents SNS POSTs to HTTP(S) subscribers, and the headers that go with them."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sabio.notifications.signing import Signer

USER_AGENT = "Amazon Simple Notification Service Agent"
CONTENT_TYPE = "text/plain; charset=UTF-8"


@dataclass(frozen=True)
class Outgoing:
    """One HTTP POST to make: where, with which headers and body, for which subscription."""

    url: str
    headers: dict[str, str]
    body: bytes
    subscription_arn: str
    message_type: str


def timestamp(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def confirm_url(base_url: str, topic_arn: str, token: str) -> str:
    query = urlencode({"Action": "ConfirmSubscription", "TopicArn": topic_arn, "Token": token})
    return f"{base_url}/?{query}"


def unsubscribe_url(base_url: str, subscription_arn: str) -> str:
    return (
        f"{base_url}/?{urlencode({'Action': 'Unsubscribe', 'SubscriptionArn': subscription_arn})}"
    )


def confirmation(
    *,
    message_type: str,
    message_id: str,
    token: str,
    topic_arn: str,
    subscription_arn: str,
    endpoint: str,
    base_url: str,
    epoch: float,
    signer: Signer,
    signature_version: str,
) -> Outgoing:
    """A `SubscriptionConfirmation` (or `UnsubscribeConfirmation`) with its SubscribeURL."""
    if message_type == "SubscriptionConfirmation":
        text = (
            f"You have chosen to subscribe to the topic {topic_arn}.\n"
            "To confirm the subscription, visit the SubscribeURL included in this message."
        )
    else:
        text = (
            f"You have chosen to deactivate subscription {subscription_arn}.\n"
            "To cancel this operation and restore the subscription, visit the SubscribeURL "
            "included in this message."
        )
    document = {
        "Type": message_type,
        "MessageId": message_id,
        "Token": token,
        "TopicArn": topic_arn,
        "Message": text,
        "SubscribeURL": confirm_url(base_url, topic_arn, token),
        "Timestamp": timestamp(epoch),
    }
    _sign(document, signer, signature_version, base_url)
    headers = _headers(message_type, message_id, topic_arn)
    if message_type != "SubscriptionConfirmation":
        headers["x-amz-sns-subscription-arn"] = subscription_arn
    return Outgoing(endpoint, headers, _encode(document), subscription_arn, message_type)


def notification(
    *,
    message_id: str,
    topic_arn: str,
    subscription_arn: str,
    endpoint: str,
    message: str,
    subject: str | None,
    attributes: dict[str, dict[str, str]],
    raw: bool,
    base_url: str,
    epoch: float,
    signer: Signer,
    signature_version: str,
) -> Outgoing:
    """A `Notification`: the JSON document, or the message alone for raw delivery."""
    headers = _headers("Notification", message_id, topic_arn)
    headers["x-amz-sns-subscription-arn"] = subscription_arn
    if raw:
        headers["x-amz-sns-rawdelivery"] = "true"
        return Outgoing(endpoint, headers, message.encode(), subscription_arn, "Notification")
    document: dict[str, Any] = {"Type": "Notification", "MessageId": message_id}
    document["TopicArn"] = topic_arn
    if subject is not None:
        document["Subject"] = subject
    document["Message"] = message
    document["Timestamp"] = timestamp(epoch)
    _sign(document, signer, signature_version, base_url)
    document["UnsubscribeURL"] = unsubscribe_url(base_url, subscription_arn)
    if attributes:
        document["MessageAttributes"] = attributes
    return Outgoing(endpoint, headers, _encode(document), subscription_arn, "Notification")


def _sign(document: dict[str, Any], signer: Signer, version: str, base_url: str) -> None:
    document["SignatureVersion"] = version
    document["Signature"] = signer.sign(document)
    document["SigningCertURL"] = f"{base_url}/{signer.certificate_name}"


def _headers(message_type: str, message_id: str, topic_arn: str) -> dict[str, str]:
    return {
        "x-amz-sns-message-type": message_type,
        "x-amz-sns-message-id": message_id,
        "x-amz-sns-topic-arn": topic_arn,
        "Content-Type": CONTENT_TYPE,
        "User-Agent": USER_AGENT,
    }


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2, ensure_ascii=False).encode()
