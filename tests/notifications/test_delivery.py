"""Real HTTP delivery: confirmation round trips, notifications, retries with back-off, and
deliveries stopping when a subscription or topic goes away."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest

# Longer than any wait between attempts (SABIO_NOTIFICATION_RETRY_MAX_SECONDS) plus a margin.
SETTLE = 1.0


def test_subscription_confirmation_round_trip(
    sns: Any, listener: Any, sns_server: Any, subscribe_confirmed: Any, verify_signature: Any
) -> None:
    topic, arn, document = subscribe_confirmed(sns, listener)
    [request] = listener.received
    assert request.path == "/hook"
    assert request.headers["x-amz-sns-message-type"] == "SubscriptionConfirmation"
    assert request.headers["x-amz-sns-topic-arn"] == topic
    assert request.headers["x-amz-sns-message-id"] == document["MessageId"]
    assert request.headers["content-type"] == "text/plain; charset=UTF-8"
    assert document["Type"] == "SubscriptionConfirmation"
    assert document["TopicArn"] == topic
    assert document["SubscribeURL"].startswith(f"{sns_server.url}/?Action=ConfirmSubscription")
    assert document["Message"].startswith(f"You have chosen to subscribe to the topic {topic}.")
    assert document["Timestamp"].endswith("Z")
    assert document["SignatureVersion"] == "1"
    verify_signature(document)
    [listed] = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert listed["SubscriptionArn"] == arn
    attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    assert attributes["PendingConfirmation"] == "false"
    assert attributes["ConfirmationWasAuthenticated"] == "false"
    assert sns.get_topic_attributes(TopicArn=topic)["Attributes"]["SubscriptionsConfirmed"] == "1"


def test_confirm_subscription_with_the_token(sns: Any, listener: Any, sns_server: Any) -> None:
    topic = sns.create_topic(Name=f"t-{uuid.uuid4().hex[:8]}")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=listener.url)
    [request] = listener.wait_for(lambda got: len(got) == 1)
    arn = sns.confirm_subscription(
        TopicArn=topic, Token=request.json()["Token"], AuthenticateOnUnsubscribe="true"
    )["SubscriptionArn"]
    assert arn.startswith(f"{topic}:")
    attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    assert attributes["ConfirmationWasAuthenticated"] == "true"
    # The unsigned unsubscribe link is refused; the API call is not.
    link = f"{sns_server.url}/?{urlencode({'Action': 'Unsubscribe', 'SubscriptionArn': arn})}"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(link, timeout=5)
    assert refused.value.code == 403
    assert b"<Code>AuthorizationError</Code>" in refused.value.read()
    sns.unsubscribe(SubscriptionArn=arn)


def test_publish_delivers_a_signed_notification(
    sns: Any, listener: Any, subscribe_confirmed: Any, verify_signature: Any
) -> None:
    topic, arn, _ = subscribe_confirmed(sns, listener)
    sns.set_topic_attributes(TopicArn=topic, AttributeName="SignatureVersion", AttributeValue="2")
    message_id = sns.publish(
        TopicArn=topic,
        Message="inference done",
        Subject="Result",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "success"}},
    )["MessageId"]
    received = listener.wait_for(lambda got: len(got) == 2)[-1]
    assert received.headers["x-amz-sns-message-type"] == "Notification"
    assert received.headers["x-amz-sns-message-id"] == message_id
    assert received.headers["x-amz-sns-topic-arn"] == topic
    assert received.headers["x-amz-sns-subscription-arn"] == arn
    assert received.headers["user-agent"] == "Amazon Simple Notification Service Agent"
    document = received.json()
    assert document["Type"] == "Notification"
    assert document["MessageId"] == message_id
    assert document["TopicArn"] == topic
    assert document["Subject"] == "Result"
    assert document["Message"] == "inference done"
    assert document["MessageAttributes"] == {"kind": {"Type": "String", "Value": "success"}}
    assert document["SignatureVersion"] == "2"
    verify_signature(document)
    # Following the UnsubscribeURL ends the subscription.
    with urllib.request.urlopen(document["UnsubscribeURL"], timeout=5) as response:
        assert b"UnsubscribeResponse" in response.read()
    assert sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []


def test_raw_delivery_and_message_structure(
    sns: Any, listener: Any, subscribe_confirmed: Any
) -> None:
    topic, arn, _ = subscribe_confirmed(sns, listener)
    sns.set_subscription_attributes(
        SubscriptionArn=arn, AttributeName="RawMessageDelivery", AttributeValue="true"
    )
    sns.publish(
        TopicArn=topic, Message='{"default": "plain", "http": "for http"}', MessageStructure="json"
    )
    received = listener.wait_for(lambda got: len(got) == 2)[-1]
    assert received.body == b"for http"
    assert received.headers["x-amz-sns-rawdelivery"] == "true"


def test_failed_deliveries_are_retried_with_back_off(
    sns: Any, listener: Any, subscribe_confirmed: Any
) -> None:
    topic, _, _ = subscribe_confirmed(sns, listener)
    listener.failures = 2
    started = time.monotonic()
    message_id = sns.publish(TopicArn=topic, Message="eventually")["MessageId"]
    got = listener.wait_for(lambda got: len(got) == 4)
    notifications = got[1:]
    assert [r.answered for r in notifications] == [500, 500, 200]
    assert {r.json()["MessageId"] for r in notifications} == {message_id}
    # Back-off of 0.1 s then 0.2 s before the third attempt.
    assert time.monotonic() - started >= 0.25


def test_retries_give_up_after_the_configured_attempts(
    sns: Any, listener: Any, subscribe_confirmed: Any
) -> None:
    topic, _, _ = subscribe_confirmed(sns, listener)
    listener.failures = 100
    sns.publish(TopicArn=topic, Message="never")
    listener.wait_for(lambda got: len(got) == 5)
    time.sleep(SETTLE)
    assert len(listener.received) == 5


def test_unsubscribe_stops_deliveries_and_retries(
    sns: Any, listener: Any, subscribe_confirmed: Any
) -> None:
    topic, arn, _ = subscribe_confirmed(sns, listener)
    listener.failures = 100
    sns.publish(TopicArn=topic, Message="retrying")
    listener.wait_for(lambda got: len(got) == 2)
    sns.unsubscribe(SubscriptionArn=arn)
    sns.publish(TopicArn=topic, Message="after unsubscribe")
    time.sleep(SETTLE)
    notifications = listener.of_type("Notification")
    assert len(notifications) <= 2
    assert all(r.json()["Message"] == "retrying" for r in notifications)


def test_delete_topic_stops_deliveries(sns: Any, listener: Any, subscribe_confirmed: Any) -> None:
    topic, _, _ = subscribe_confirmed(sns, listener)
    listener.failures = 100
    sns.publish(TopicArn=topic, Message="retrying")
    listener.wait_for(lambda got: len(got) == 2)
    sns.delete_topic(TopicArn=topic)
    time.sleep(SETTLE)
    assert len(listener.received) <= 3
