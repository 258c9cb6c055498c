"""SNS topics and HTTP(S) subscriptions: the operations, free of any wire format.

Topics and subscriptions are rows of the resource table, so they survive a restart. A topic
row is keyed by a hash of its name because SNS names are case-sensitive and the table's
names are not; lookups go by ARN. A subscription row is keyed by its id and keeps the base
URL it was created through, so its confirmation and unsubscribe links point back at this
server however the message is published later.

Unsubscribing a confirmed subscription keeps its row for three days with the status `Deleted`
and a fresh token, as SNS does: the `UnsubscribeConfirmation` message carries that token, and
confirming with it restores the subscription."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sabio.notifications import attributes as attrs
from sabio.notifications.arns import SnsArns, valid_topic_name
from sabio.notifications.errors import (
    AuthorizationError,
    invalid,
    subscription_not_found,
    topic_not_found,
)
from sabio.resources import SNS_SUBSCRIPTION, SNS_TOPIC
from sabio.store.entities import Resource
from sabio.store.repository import AlreadyExists, Repository

PENDING = "PendingConfirmation"
CONFIRMED = "Confirmed"
DELETED = "Deleted"
# How long an unsubscribed subscription can be restored with its token.
RESTORABLE_SECONDS = 3 * 24 * 3600
PAGE = 100

SUPPORTED_PROTOCOLS = ("http", "https")
# Every protocol SNS knows; the others are refused with a reason, unknown ones as SNS does.
SNS_PROTOCOLS = frozenset(
    {"http", "https", "email", "email-json", "sms", "sqs", "application", "lambda", "firehose"}
)


@dataclass(frozen=True)
class Subscription:
    arn: str
    topic_arn: str
    protocol: str
    endpoint: str
    owner: str
    status: str
    confirmed: bool
    token: str
    base_url: str
    attributes: dict[str, str]
    authenticated: bool
    authenticate_on_unsubscribe: bool
    deleted_at: float = 0.0

    @property
    def raw(self) -> bool:
        return self.attributes.get("RawMessageDelivery") == "true"

    @property
    def deleted(self) -> bool:
        return self.status == DELETED


def _subscription(resource: Resource) -> Subscription:
    spec, state = resource.spec, resource.state
    return Subscription(
        arn=resource.arn,
        topic_arn=spec["TopicArn"],
        protocol=spec["Protocol"],
        endpoint=spec["Endpoint"],
        owner=spec["Owner"],
        status=resource.status or PENDING,
        confirmed=resource.status == CONFIRMED,
        token=state["Token"],
        base_url=spec["BaseUrl"],
        attributes=dict(spec.get("Attributes", {})),
        authenticated=bool(state.get("ConfirmationWasAuthenticated", False)),
        authenticate_on_unsubscribe=bool(state.get("AuthenticateOnUnsubscribe", False)),
        deleted_at=float(state.get("DeletedAt", 0.0)),
    )


def _row_name(topic_name: str) -> str:
    return hashlib.sha256(topic_name.encode()).hexdigest()


class Topics:
    """Topic and subscription records; knows nothing of delivery."""

    def __init__(self, repository: Repository, arns: SnsArns) -> None:
        self.repository = repository
        self.arns = arns

    # Topics

    def create_topic(self, name: str, attributes: dict[str, str], tags: dict[str, str]) -> str:
        if not valid_topic_name(name):
            raise invalid("Topic Name")
        wanted = dict(
            attrs.topic_attribute(k, v, member="Attributes") for k, v in attributes.items()
        )
        arn = self.arns.topic(name)
        now = time.time()
        resource = Resource(SNS_TOPIC.key, _row_name(name), arn, {"Name": name}, now, now)
        resource.state = {"Attributes": wanted}
        try:
            self.repository.create(resource, tags)
        except AlreadyExists:
            existing = self.topic(arn)
            if any(existing.state["Attributes"].get(k) != v for k, v in wanted.items()):
                raise invalid(
                    "Attributes", "Topic already exists with different attributes"
                ) from None
        return arn

    def topic(self, arn: str, member: str = "TopicArn") -> Resource:
        self.arns.check_topic(arn, member)
        resource = self.repository.get_by_arn(arn)
        if resource is None or resource.kind != SNS_TOPIC.key:
            raise topic_not_found()
        return resource

    def delete_topic(self, arn: str) -> None:
        """Idempotent, as in SNS: a topic that does not exist is not an error."""
        name = self.arns.check_topic(arn)
        for subscription in self._rows(arn):
            self.repository.delete(SNS_SUBSCRIPTION.key, _subscription_id(subscription.arn))
        self.repository.delete(SNS_TOPIC.key, _row_name(name))

    def list_topics(self, next_token: str | None) -> tuple[list[str], str | None]:
        arns = [r.arn for r in self.repository.all(SNS_TOPIC.key)]
        return _page(arns, next_token)

    def topic_attributes(self, arn: str) -> dict[str, str]:
        topic = self.topic(arn)
        subscriptions = self.subscriptions(arn)
        confirmed = sum(1 for s in subscriptions if s.confirmed)
        return {
            "TopicArn": arn,
            "Owner": self.arns.account_id,
            "DisplayName": "",
            **topic.state["Attributes"],
            "SubscriptionsConfirmed": str(confirmed),
            "SubscriptionsPending": str(len(subscriptions) - confirmed),
            "SubscriptionsDeleted": str(len(self._restorable(arn))),
        }

    def set_topic_attribute(self, arn: str, name: str, value: str) -> None:
        topic = self.topic(arn)
        name, value = attrs.topic_attribute(name, value, member="AttributeName")
        state = {**topic.state, "Attributes": {**topic.state["Attributes"], name: value}}
        self.repository.update(SNS_TOPIC.key, topic.name, state=state)

    def signature_version(self, topic_arn: str) -> str:
        resource = self.repository.get_by_arn(topic_arn)
        return str(resource.state["Attributes"].get("SignatureVersion", "1")) if resource else "1"

    # Subscriptions

    def subscribe(
        self,
        topic_arn: str,
        protocol: str,
        endpoint: str | None,
        attributes: dict[str, str],
        base_url: str,
    ) -> tuple[Subscription, bool]:
        """The subscription, and whether it needs a (new) confirmation message."""
        self.topic(topic_arn)
        _check_endpoint(protocol, endpoint)
        assert endpoint is not None
        wanted = dict(
            attrs.subscription_attribute(k, v, member="Attributes") for k, v in attributes.items()
        )
        checked = attrs.merged_subscription_attributes(
            {"RawMessageDelivery": "false"}, wanted, member="Attributes"
        )
        for existing in self.subscriptions(topic_arn):
            if existing.protocol == protocol and existing.endpoint == endpoint:
                if any(existing.attributes.get(k, "false") != v for k, v in wanted.items()):
                    raise invalid(
                        "Attributes", "Subscription already exists with different attributes"
                    )
                return existing, not existing.confirmed
        arn = self.arns.new_subscription(topic_arn)
        spec = {
            "TopicArn": topic_arn,
            "Protocol": protocol,
            "Endpoint": endpoint,
            "Owner": self.arns.account_id,
            "BaseUrl": base_url,
            "Attributes": checked,
        }
        now = time.time()
        state = {"Token": secrets.token_hex(64)}
        resource = Resource(SNS_SUBSCRIPTION.key, _subscription_id(arn), arn, spec, now, now)
        resource.status, resource.state = PENDING, state
        self.repository.create(resource)
        return _subscription(resource), True

    def confirm(
        self,
        topic_arn: str,
        token: str,
        *,
        authenticated: bool,
        authenticate_on_unsubscribe: str | None = None,
    ) -> str:
        """Confirm by token, or restore an unsubscribed subscription by the token of its
        `UnsubscribeConfirmation`. `AuthenticateOnUnsubscribe=true` takes effect only through
        an authenticated (API) confirmation, and then the unsigned UnsubscribeURL stops working."""
        if authenticate_on_unsubscribe not in (None, "true", "false"):
            raise invalid("AuthenticateOnUnsubscribe")
        self.topic(topic_arn)
        oldest = time.time() - RESTORABLE_SECONDS
        for subscription in self._rows(topic_arn):
            if subscription.deleted and subscription.deleted_at <= oldest:
                continue
            if secrets.compare_digest(subscription.token, token):
                if subscription.deleted and (twin := self._twin(subscription)) is not None:
                    self.repository.delete(SNS_SUBSCRIPTION.key, _subscription_id(subscription.arn))
                    return twin.arn
                if not subscription.confirmed:
                    state = {
                        "Token": token,
                        "ConfirmationWasAuthenticated": authenticated,
                        "AuthenticateOnUnsubscribe": authenticated
                        and authenticate_on_unsubscribe == "true",
                    }
                    self.repository.update(
                        SNS_SUBSCRIPTION.key,
                        _subscription_id(subscription.arn),
                        status=CONFIRMED,
                        state=state,
                    )
                return subscription.arn
        raise invalid("Token")

    def subscription(self, arn: str) -> Subscription:
        self.arns.check_subscription(arn)
        resource = self.repository.get_by_arn(arn)
        if resource is None or resource.kind != SNS_SUBSCRIPTION.key:
            raise subscription_not_found()
        found = _subscription(resource)
        if found.deleted:
            raise subscription_not_found()
        return found

    def find_subscription(self, arn: str) -> Subscription | None:
        resource = self.repository.get_by_arn(arn)
        if resource is None or resource.kind != SNS_SUBSCRIPTION.key:
            return None
        return _subscription(resource)

    def unsubscribe(self, arn: str, *, authenticated: bool = True) -> Subscription | None:
        """End a subscription. A confirmed one is kept, restorable, under a new token and
        returned, so its `UnsubscribeConfirmation` can be sent; a pending one just goes."""
        subscription = self.subscription(arn)
        if subscription.authenticate_on_unsubscribe and not authenticated:
            raise AuthorizationError(
                "This subscription requires an authenticated request to unsubscribe"
            )
        self._purge_expired()
        if not subscription.confirmed:
            self.repository.delete(SNS_SUBSCRIPTION.key, _subscription_id(arn))
            return None
        state = {"Token": secrets.token_hex(64), "DeletedAt": time.time()}
        self.repository.update(
            SNS_SUBSCRIPTION.key, _subscription_id(arn), status=DELETED, state=state
        )
        return self.find_subscription(arn)

    def subscriptions(self, topic_arn: str | None = None) -> list[Subscription]:
        """The live (pending or confirmed) subscriptions, of one topic or of all."""
        return [s for s in self._rows(topic_arn) if not s.deleted]

    def _rows(self, topic_arn: str | None) -> list[Subscription]:
        found = [_subscription(r) for r in self.repository.all(SNS_SUBSCRIPTION.key)]
        return [s for s in found if topic_arn is None or s.topic_arn == topic_arn]

    def _restorable(self, topic_arn: str | None) -> list[Subscription]:
        oldest = time.time() - RESTORABLE_SECONDS
        return [s for s in self._rows(topic_arn) if s.deleted and s.deleted_at > oldest]

    def _purge_expired(self) -> None:
        oldest = time.time() - RESTORABLE_SECONDS
        for subscription in self._rows(None):
            if subscription.deleted and subscription.deleted_at <= oldest:
                self.repository.delete(SNS_SUBSCRIPTION.key, _subscription_id(subscription.arn))

    def _twin(self, subscription: Subscription) -> Subscription | None:
        """A live subscription of the same endpoint, made after this one was unsubscribed."""
        for other in self.subscriptions(subscription.topic_arn):
            if (other.protocol, other.endpoint) == (subscription.protocol, subscription.endpoint):
                return other
        return None

    def list_subscriptions(
        self, topic_arn: str | None, next_token: str | None
    ) -> tuple[list[dict[str, str]], str | None]:
        if topic_arn is not None:
            self.topic(topic_arn)
        rows = [
            {
                "SubscriptionArn": s.arn if s.confirmed else PENDING,
                "Owner": s.owner,
                "Protocol": s.protocol,
                "Endpoint": s.endpoint,
                "TopicArn": s.topic_arn,
            }
            for s in self.subscriptions(topic_arn)
        ]
        return _page(rows, next_token)

    def subscription_attributes(self, arn: str) -> dict[str, str]:
        s = self.subscription(arn)
        return {
            "SubscriptionArn": s.arn,
            "TopicArn": s.topic_arn,
            "Owner": s.owner,
            "Protocol": s.protocol,
            "Endpoint": s.endpoint,
            "PendingConfirmation": "false" if s.confirmed else "true",
            "ConfirmationWasAuthenticated": "true" if s.authenticated else "false",
            **s.attributes,
        }

    def set_subscription_attribute(self, arn: str, name: str, value: str) -> None:
        s = self.subscription(arn)
        name, value = attrs.subscription_attribute(name, value, member="AttributeName")
        resource = self.repository.get_by_arn(arn)
        assert resource is not None
        merged = attrs.merged_subscription_attributes(
            s.attributes, {name: value}, member="AttributeName"
        )
        spec = {**resource.spec, "Attributes": merged}
        self.repository.update(SNS_SUBSCRIPTION.key, _subscription_id(arn), spec=spec)


def _subscription_id(arn: str) -> str:
    return arn.rsplit(":", 1)[1]


def _check_endpoint(protocol: str, endpoint: str | None) -> None:
    if protocol not in SNS_PROTOCOLS:
        raise invalid(f"Amazon SNS does not support this protocol string: {protocol}")
    if protocol not in SUPPORTED_PROTOCOLS:
        raise invalid(
            "Protocol", f"Sabio delivers to http and https endpoints only, not {protocol}"
        )
    if not endpoint:
        raise invalid("Endpoint")
    if not endpoint.startswith(f"{protocol}://"):
        raise invalid("Endpoint must match the specified protocol")
    try:
        host = urlsplit(endpoint).hostname
    except ValueError:
        host = None
    if not host or any(c.isspace() for c in endpoint):
        raise invalid("Endpoint")


def _page(items: list[Any], next_token: str | None) -> tuple[list[Any], str | None]:
    start = 0
    if next_token is not None:
        if not next_token.isdigit() or int(next_token) > len(items):
            raise invalid("NextToken")
        start = int(next_token)
    end = start + PAGE
    return items[start:end], str(end) if end < len(items) else None
