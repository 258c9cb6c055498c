"""Unsubscribing tells an HTTP subscriber, with a signed `UnsubscribeConfirmation` whose
SubscribeURL (or token) restores the subscription."""

from __future__ import annotations

import urllib.request
from typing import Any

import botocore.exceptions
import pytest


def test_unsubscribe_confirmation_restores_the_subscription(
    sns: Any, listener: Any, sns_server: Any, subscribe_confirmed: Any, verify_signature: Any
) -> None:
    topic, arn, _ = subscribe_confirmed(sns, listener)
    sns.unsubscribe(SubscriptionArn=arn)
    got = listener.wait_for(lambda got: len(got) == 2)
    request = got[-1]
    assert request.headers["x-amz-sns-message-type"] == "UnsubscribeConfirmation"
    assert request.headers["x-amz-sns-subscription-arn"] == arn
    assert request.headers["x-amz-sns-topic-arn"] == topic
    document = request.json()
    assert document["Type"] == "UnsubscribeConfirmation"
    assert document["TopicArn"] == topic
    assert document["Message"].startswith(f"You have chosen to deactivate subscription {arn}.")
    assert document["SubscribeURL"].startswith(f"{sns_server.url}/?Action=ConfirmSubscription")
    assert len(document["Token"]) >= 64
    verify_signature(document)

    # Gone meanwhile: not listed, not found, counted as deleted, not delivered to.
    assert sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        sns.get_subscription_attributes(SubscriptionArn=arn)
    assert missing.value.response["Error"]["Code"] == "NotFound"
    attributes = sns.get_topic_attributes(TopicArn=topic)["Attributes"]
    assert attributes["SubscriptionsDeleted"] == "1"
    assert attributes["SubscriptionsConfirmed"] == "0"
    sns.publish(TopicArn=topic, Message="while unsubscribed")

    # Following the link restores the same subscription.
    with urllib.request.urlopen(document["SubscribeURL"], timeout=5) as response:
        assert arn in response.read().decode()
    [listed] = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert listed["SubscriptionArn"] == arn
    assert sns.get_topic_attributes(TopicArn=topic)["Attributes"]["SubscriptionsDeleted"] == "0"
    message_id = sns.publish(TopicArn=topic, Message="restored")["MessageId"]
    delivered = listener.wait_for(lambda got: len(got) == 3)[-1].json()
    assert (delivered["MessageId"], delivered["Message"]) == (message_id, "restored")

    # Once more, restored this time through ConfirmSubscription with the new token.
    sns.unsubscribe(SubscriptionArn=arn)
    second = listener.wait_for(lambda got: len(got) == 4)[-1].json()
    assert second["Type"] == "UnsubscribeConfirmation"
    assert second["Token"] != document["Token"]
    restored = sns.confirm_subscription(TopicArn=topic, Token=second["Token"])
    assert restored["SubscriptionArn"] == arn
    assert (
        sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"][
            "ConfirmationWasAuthenticated"
        ]
        == "true"
    )
    assert [r.json()["Message"] for r in listener.of_type("Notification")] == ["restored"]


def test_unsubscribing_a_pending_subscription_sends_nothing(sns: Any, listener: Any) -> None:
    topic = sns.create_topic(Name="pending-unsubscribe")["TopicArn"]
    arn = sns.subscribe(
        TopicArn=topic, Protocol="http", Endpoint=listener.url, ReturnSubscriptionArn=True
    )["SubscriptionArn"]
    [confirmation] = listener.wait_for(lambda got: len(got) == 1)
    sns.unsubscribe(SubscriptionArn=arn)
    # Its confirmation token no longer confirms anything.
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        sns.confirm_subscription(TopicArn=topic, Token=confirmation.json()["Token"])
    assert refused.value.response["Error"]["Message"] == "Invalid parameter: Token"
    assert sns.get_topic_attributes(TopicArn=topic)["Attributes"]["SubscriptionsDeleted"] == "0"
    assert listener.of_type("UnsubscribeConfirmation") == []
