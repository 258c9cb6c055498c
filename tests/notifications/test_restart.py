"""Topics and subscriptions are stored, not held in memory: they survive a restart."""

from __future__ import annotations

import json
import urllib.request
import uuid
from typing import Any

import boto3
import pytest

from support.server import SabioServer


@pytest.mark.slow
def test_topics_and_subscriptions_survive_a_restart(sns_server: SabioServer, listener: Any) -> None:
    sns = boto3.client("sns", endpoint_url=sns_server.url, region_name="us-east-1")
    name = f"Results-{uuid.uuid4().hex[:8]}"
    topic = sns.create_topic(Name=name, Attributes={"DisplayName": "kept"})["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=listener.url)
    [confirmation] = listener.wait_for(lambda got: len(got) == 1)
    with urllib.request.urlopen(confirmation.json()["SubscribeURL"], timeout=5):
        pass
    certificate_url = confirmation.json()["SigningCertURL"]
    sns_server.stop()
    sns_server.start()
    assert topic in [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    assert sns.get_topic_attributes(TopicArn=topic)["Attributes"]["DisplayName"] == "kept"
    [subscription] = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert subscription["SubscriptionArn"].startswith(f"{topic}:")
    message_id = sns.publish(TopicArn=topic, Message="after restart")["MessageId"]
    delivered = listener.wait_for(lambda got: len(got) == 2)[-1]
    assert json.loads(delivered.body)["MessageId"] == message_id
    # The same signing certificate, kept in the home.
    assert json.loads(delivered.body)["SigningCertURL"] == certificate_url
