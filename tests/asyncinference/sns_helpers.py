"""Subscribing the tests' HTTP listener to a topic on the server, and reading back the
notifications SNS delivered to it."""

from __future__ import annotations

import urllib.request
from typing import Any

from notifications.conftest import Listener


def confirmed(sns: Any, listener: Listener, name: str) -> str:
    """A topic with the listener subscribed over HTTP, confirmed through its SubscribeURL."""
    topic = sns.create_topic(Name=name)["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=f"{listener.url}/{name}")

    def confirmation(got: list[Any]) -> bool:
        return any(r.json().get("TopicArn") == topic for r in got)

    [request] = [r for r in listener.wait_for(confirmation) if r.json()["TopicArn"] == topic]
    assert request.headers["x-amz-sns-message-type"] == "SubscriptionConfirmation"
    with urllib.request.urlopen(request.json()["SubscribeURL"], timeout=5) as response:
        assert response.status == 200
    return str(topic)


def notifications(received: list[Any]) -> list[dict[str, Any]]:
    """The SNS Notification documents delivered, each checked against its headers."""
    found = []
    for request in received:
        if request.headers["x-amz-sns-message-type"] != "Notification":
            continue
        document = request.json()
        assert document["Type"] == "Notification"
        assert request.headers["x-amz-sns-topic-arn"] == document["TopicArn"]
        assert request.headers["x-amz-sns-message-id"] == document["MessageId"]
        found.append(document)
    return found
