"""Publishing: check a message the way SNS does, then hand one delivery per confirmed
subscription whose filter policy accepts it to the delivery engine. Also sends the messages
that subscribing and unsubscribing cause (`SubscriptionConfirmation`,
`UnsubscribeConfirmation`). This is the `Publisher` other capabilities (asynchronous inference)
are given."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from sabio.config import Settings
from sabio.notifications import filter_policy, message_attributes
from sabio.notifications.arns import SnsArns
from sabio.notifications.delivery import DeliveryEngine, RetryPolicy
from sabio.notifications.errors import InvalidParameter, invalid
from sabio.notifications.messages import confirmation, notification
from sabio.notifications.service import CONFIRMED, DELETED, PENDING, Subscription, Topics
from sabio.notifications.signing import Signer
from sabio.store.repository import Repository

MAX_MESSAGE_BYTES = 256 * 1024
MAX_SUBJECT = 100
# The subscription status in which each kind of message is still worth delivering.
_WANTED_IN = {
    "SubscriptionConfirmation": PENDING,
    "Notification": CONFIRMED,
    "UnsubscribeConfirmation": DELETED,
}


class Notifications:
    def __init__(self, topics: Topics, signer: Signer, policy: RetryPolicy) -> None:
        self.topics = topics
        self.signer = signer
        self.engine = DeliveryEngine(policy, self._still_wanted)

    async def start(self) -> None:
        await self.engine.start()

    async def stop(self) -> None:
        await self.engine.stop()

    # The Publisher protocol

    async def publish(self, topic_arn: str, message: str, *, subject: str | None = None) -> str:
        return await asyncio.to_thread(self.publish_message, topic_arn, message, subject=subject)

    # Operations that send messages (blocking: they read and write the store)

    def subscribe(
        self,
        topic_arn: str,
        protocol: str,
        endpoint: str | None,
        attributes: dict[str, str],
        *,
        return_arn: bool,
        base_url: str,
    ) -> str:
        subscription, send = self.topics.subscribe(
            topic_arn, protocol, endpoint, attributes, base_url
        )
        if send:
            self._send_confirmation("SubscriptionConfirmation", subscription)
        if subscription.confirmed or return_arn:
            return subscription.arn
        return "pending confirmation"

    def unsubscribe(self, subscription_arn: str, *, authenticated: bool) -> None:
        """End a subscription; a confirmed one is told, with a link that restores it."""
        ended = self.topics.unsubscribe(subscription_arn, authenticated=authenticated)
        if ended is not None:
            self._send_confirmation("UnsubscribeConfirmation", ended)

    def _send_confirmation(self, message_type: str, subscription: Subscription) -> None:
        self.engine.submit(
            confirmation(
                message_type=message_type,
                message_id=str(uuid.uuid4()),
                token=subscription.token,
                topic_arn=subscription.topic_arn,
                subscription_arn=subscription.arn,
                endpoint=subscription.endpoint,
                base_url=subscription.base_url,
                epoch=time.time(),
                signer=self.signer,
                signature_version=self.topics.signature_version(subscription.topic_arn),
            )
        )

    def publish_message(
        self,
        topic_arn: str,
        message: str,
        *,
        subject: str | None = None,
        structure: str | None = None,
        attributes: dict[str, dict[str, Any]] | None = None,
    ) -> str:
        self.topics.topic(topic_arn)
        check_message(message, subject, attributes or {})
        bodies = _structured(message) if structure == "json" else None
        if structure is not None and structure != "json":
            raise invalid("MessageStructure")
        wire_attributes = message_attributes.wire(attributes or {})
        message_id = str(uuid.uuid4())
        epoch = time.time()
        version = self.topics.signature_version(topic_arn)
        for subscription in self.topics.subscriptions(topic_arn):
            if not subscription.confirmed:
                continue
            text = message if bodies is None else _body_for(bodies, subscription)
            policy = subscription.attributes.get("FilterPolicy")
            scope = subscription.attributes.get("FilterPolicyScope")
            if not filter_policy.accepts(policy, scope, text, attributes or {}):
                continue
            self.engine.submit(
                notification(
                    message_id=message_id,
                    topic_arn=topic_arn,
                    subscription_arn=subscription.arn,
                    endpoint=subscription.endpoint,
                    message=text,
                    subject=subject,
                    attributes=wire_attributes,
                    raw=subscription.raw,
                    base_url=subscription.base_url,
                    epoch=epoch,
                    signer=self.signer,
                    signature_version=version,
                )
            )
        return message_id

    async def _still_wanted(self, subscription_arn: str, message_type: str) -> bool:
        found = await asyncio.to_thread(self.topics.find_subscription, subscription_arn)
        return found is not None and found.status == _WANTED_IN[message_type]


def refuse_fifo_members(request: dict[str, Any]) -> None:
    """Deduplication and group ids belong to FIFO topics, which Sabio does not have."""
    for member in ("MessageDeduplicationId", "MessageGroupId"):
        if request.get(member):
            raise invalid(
                member,
                f"The request includes {member} parameter that is not valid for this topic type",
            )


def message_size(message: str, attributes: dict[str, dict[str, Any]]) -> int:
    """What counts toward SNS's 256 KiB: the message, and each attribute's name and parts."""
    return len(message.encode()) + message_attributes.size(attributes)


def check_message(message: str, subject: str | None, attributes: dict[str, dict[str, Any]]) -> None:
    if not message:
        raise invalid("Empty message")
    if message_size(message, attributes) > MAX_MESSAGE_BYTES:
        raise invalid("Message too long")
    if subject is not None and not _valid_subject(subject):
        raise invalid("Subject")
    message_attributes.check(attributes)


def _valid_subject(subject: str) -> bool:
    """ASCII text that starts with a letter, number or punctuation, no line breaks or
    control characters, under 100 characters."""
    if not subject or len(subject) >= MAX_SUBJECT or not subject.isascii():
        return False
    if not subject[0].isprintable() or subject[0].isspace():
        return False
    return all(c.isprintable() for c in subject)


def _structured(message: str) -> dict[str, Any]:
    try:
        bodies = json.loads(message)
    except ValueError:
        bodies = None
    if not isinstance(bodies, dict):
        raise InvalidParameter(
            "Invalid parameter: Message Structure - JSON message body failed to parse"
        )
    if not isinstance(bodies.get("default"), str):
        raise InvalidParameter(
            "Invalid parameter: Message Structure - No default entry in JSON message body"
        )
    return bodies


def _body_for(bodies: dict[str, Any], subscription: Subscription) -> str:
    specific = bodies.get(subscription.protocol)
    return specific if isinstance(specific, str) else str(bodies["default"])


def from_settings(repository: Repository, settings: Settings) -> Notifications:
    """The notifications of one server: SNS ARNs of its region and account, its signing key
    under `<home>/notifications/`, and its delivery retry settings."""
    policy = RetryPolicy(
        attempts=settings.notification_delivery_attempts,
        base_delay=settings.notification_retry_base_seconds,
        max_delay=settings.notification_retry_max_seconds,
        timeout=settings.notification_delivery_timeout_seconds,
    )
    topics = Topics(repository, SnsArns(settings.region, settings.account_id))
    return Notifications(topics, Signer(settings.home / "notifications"), policy)
