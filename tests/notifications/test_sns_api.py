"""The SNS operations and their errors, through an unmodified boto3 `sns` client."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from typing import Any

import botocore.exceptions
import pytest

ACCOUNT = "123456789012"


def name() -> str:
    return f"topic-{uuid.uuid4().hex[:8]}"


def error_of(call: Any, **kwargs: Any) -> tuple[str, str, int]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def test_create_topic_is_idempotent_and_case_sensitive(sns: Any) -> None:
    topic = name()
    arn = sns.create_topic(Name=topic)["TopicArn"]
    assert arn == f"arn:aws:sns:us-east-1:{ACCOUNT}:{topic}"
    assert sns.create_topic(Name=topic)["TopicArn"] == arn
    upper = sns.create_topic(Name=topic.upper())["TopicArn"]
    assert upper != arn
    listed = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    assert arn in listed
    assert upper in listed


@pytest.mark.parametrize("bad", ["has space", "dot.name", "x" * 257, "orders.fifo"])
def test_create_topic_rejects_bad_names(sns: Any, bad: str) -> None:
    assert error_of(sns.create_topic, Name=bad) == (
        "InvalidParameter", "Invalid parameter: Topic Name", 400
    )  # fmt: skip


def test_topic_attributes(sns: Any) -> None:
    arn = sns.create_topic(Name=name(), Attributes={"DisplayName": "Orders"})["TopicArn"]
    attributes = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert attributes["TopicArn"] == arn
    assert attributes["Owner"] == ACCOUNT
    assert attributes["DisplayName"] == "Orders"
    assert attributes["SubscriptionsConfirmed"] == "0"
    sns.set_topic_attributes(TopicArn=arn, AttributeName="DisplayName", AttributeValue="New")
    assert sns.get_topic_attributes(TopicArn=arn)["Attributes"]["DisplayName"] == "New"
    code, message, _ = error_of(
        sns.set_topic_attributes, TopicArn=arn, AttributeName="Bogus", AttributeValue="x"
    )
    assert (code, message) == ("InvalidParameter", "Invalid parameter: AttributeName")


def test_create_topic_with_other_attributes_conflicts(sns: Any) -> None:
    topic = name()
    sns.create_topic(Name=topic, Attributes={"DisplayName": "a"})
    code, message, _ = error_of(sns.create_topic, Name=topic, Attributes={"DisplayName": "b"})
    assert code == "InvalidParameter"
    assert message.startswith("Invalid parameter: Attributes Reason: Topic already exists")


def test_fifo_topics_are_refused_by_name(sns: Any) -> None:
    code, message, _ = error_of(sns.create_topic, Name="orders", Attributes={"FifoTopic": "true"})
    assert code == "InvalidParameter"
    assert "FIFO" in message


def test_unknown_topic_is_not_found(sns: Any) -> None:
    missing = f"arn:aws:sns:us-east-1:{ACCOUNT}:{name()}"
    for call, kwargs in [
        (sns.get_topic_attributes, {"TopicArn": missing}),
        (sns.list_subscriptions_by_topic, {"TopicArn": missing}),
        (sns.publish, {"TopicArn": missing, "Message": "hi"}),
        (sns.subscribe, {"TopicArn": missing, "Protocol": "http", "Endpoint": "http://h/"}),
    ]:
        assert error_of(call, **kwargs) == ("NotFound", "Topic does not exist", 404)


def test_malformed_arns_are_invalid_parameters(sns: Any) -> None:
    assert error_of(sns.get_topic_attributes, TopicArn="orders") == (
        "InvalidParameter",
        "Invalid parameter: TopicArn Reason: An ARN must have at least 6 elements, not 1",
        400,
    )
    other_region = f"arn:aws:sns:eu-west-1:{ACCOUNT}:orders"
    assert error_of(sns.get_topic_attributes, TopicArn=other_region)[1] == (
        "Invalid parameter: TopicArn"
    )
    code, _, _ = error_of(sns.unsubscribe, SubscriptionArn=f"arn:aws:sns:us-east-1:{ACCOUNT}:t")
    assert code == "InvalidParameter"


def test_delete_topic_is_idempotent(sns: Any) -> None:
    arn = sns.create_topic(Name=name())["TopicArn"]
    sns.delete_topic(TopicArn=arn)
    sns.delete_topic(TopicArn=arn)
    assert arn not in [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    assert error_of(sns.get_topic_attributes, TopicArn=arn)[0] == "NotFound"


def test_subscribe_validates_protocol_and_endpoint(sns: Any) -> None:
    arn = sns.create_topic(Name=name())["TopicArn"]
    assert error_of(sns.subscribe, TopicArn=arn, Protocol="ftp", Endpoint="ftp://h/")[1] == (
        "Invalid parameter: Amazon SNS does not support this protocol string: ftp"
    )
    code, message, _ = error_of(sns.subscribe, TopicArn=arn, Protocol="sqs", Endpoint="arn:x")
    assert code == "InvalidParameter"
    assert "sqs" in message
    assert error_of(sns.subscribe, TopicArn=arn, Protocol="https", Endpoint="http://h/")[1] == (
        "Invalid parameter: Endpoint must match the specified protocol"
    )
    assert error_of(sns.subscribe, TopicArn=arn, Protocol="http")[1] == (
        "Invalid parameter: Endpoint"
    )
    code, message, _ = error_of(
        sns.subscribe,
        TopicArn=arn,
        Protocol="http",
        Endpoint="http://h/",
        Attributes={"RedrivePolicy": "{}"},
    )
    assert code == "InvalidParameter"
    assert "RedrivePolicy" in message


def test_subscription_lifecycle_without_confirmation(sns: Any) -> None:
    arn = sns.create_topic(Name=name())["TopicArn"]
    # Nothing listens there: the confirmation message fails, the subscription stays pending.
    endpoint = "http://127.0.0.1:9/hook"
    assert (
        sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=endpoint)["SubscriptionArn"]
        == "pending confirmation"
    )
    subscription_arn = sns.subscribe(
        TopicArn=arn, Protocol="http", Endpoint=endpoint, ReturnSubscriptionArn=True
    )["SubscriptionArn"]
    assert subscription_arn.startswith(f"{arn}:")
    [listed] = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    assert listed == {
        "SubscriptionArn": "PendingConfirmation",
        "Owner": ACCOUNT,
        "Protocol": "http",
        "Endpoint": endpoint,
        "TopicArn": arn,
    }
    attributes = sns.get_subscription_attributes(SubscriptionArn=subscription_arn)["Attributes"]
    assert attributes["PendingConfirmation"] == "true"
    assert attributes["RawMessageDelivery"] == "false"
    sns.set_subscription_attributes(
        SubscriptionArn=subscription_arn, AttributeName="RawMessageDelivery", AttributeValue="true"
    )
    attributes = sns.get_subscription_attributes(SubscriptionArn=subscription_arn)["Attributes"]
    assert attributes["RawMessageDelivery"] == "true"
    topic = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert topic["SubscriptionsPending"] == "1"
    assert error_of(sns.confirm_subscription, TopicArn=arn, Token="0" * 128) == (
        "InvalidParameter", "Invalid parameter: Token", 400
    )  # fmt: skip
    sns.unsubscribe(SubscriptionArn=subscription_arn)
    assert sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"] == []
    assert error_of(sns.unsubscribe, SubscriptionArn=subscription_arn) == (
        "NotFound", "Subscription does not exist", 404
    )  # fmt: skip
    assert error_of(sns.get_subscription_attributes, SubscriptionArn=subscription_arn)[0] == (
        "NotFound"
    )


def test_publish_checks_its_message(sns: Any) -> None:
    arn = sns.create_topic(Name=name())["TopicArn"]
    assert error_of(sns.publish, TopicArn=arn, Message="")[1] == "Invalid parameter: Empty message"
    assert error_of(sns.publish, TopicArn=arn, Message="x" * (256 * 1024 + 1))[1] == (
        "Invalid parameter: Message too long"
    )
    assert error_of(sns.publish, TopicArn=arn, Message="m", Subject="a\nb")[1] == (
        "Invalid parameter: Subject"
    )
    assert error_of(sns.publish, Message="m")[1] == (
        "Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter"
    )
    assert error_of(sns.publish, TopicArn=arn, Message="{", MessageStructure="json")[1] == (
        "Invalid parameter: Message Structure - JSON message body failed to parse"
    )
    assert (
        error_of(sns.publish, TopicArn=arn, Message='{"http": "x"}', MessageStructure="json")[1]
        == "Invalid parameter: Message Structure - No default entry in JSON message body"
    )
    message_id = sns.publish(TopicArn=arn, Message="nobody listens", Subject="Hi")["MessageId"]
    assert uuid.UUID(message_id)


def test_topic_tags_are_kept(sns: Any) -> None:
    arn = sns.create_topic(Name=name(), Tags=[{"Key": "team", "Value": "ml"}])["TopicArn"]
    assert sns.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]


def test_list_topics_pages(sns: Any) -> None:
    for _ in range(3):
        sns.create_topic(Name=name())
    seen = []
    for page in sns.get_paginator("list_topics").paginate():
        seen.extend(t["TopicArn"] for t in page["Topics"])
    assert len(seen) == len(set(seen)) >= 3
    assert error_of(sns.list_topics, NextToken="bogus")[1] == "Invalid parameter: NextToken"


def test_unknown_actions_and_missing_members_are_query_errors(sns_server: Any) -> None:
    request = urllib.request.Request(f"{sns_server.url}/?Action=DeleteTopic&TopicArn=x")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 400
    body = caught.value.read().decode()
    assert "<Code>InvalidAction</Code>" in body
    assert "<Type>Sender</Type>" in body


def test_requests_are_claimed_by_their_signing_scope(sns_server: Any) -> None:
    """A form POST signed for `sns` reaches SNS; a required member missing is SNS's error."""
    request = urllib.request.Request(
        f"{sns_server.url}/",
        data=b"Action=CreateTopic&Version=2010-03-31",
        headers={
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/sns/"
            "aws4_request, SignedHeaders=host, Signature=0",
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 400
    body = caught.value.read().decode()
    assert "<Code>ValidationError</Code>" in body
    assert "Value null at 'name'" in body


def test_publish_checks_message_attributes(sns: Any) -> None:
    arn = sns.create_topic(Name=name())["TopicArn"]

    def refused(attributes: dict[str, Any]) -> tuple[str, str, int]:
        return error_of(sns.publish, TopicArn=arn, Message="m", MessageAttributes=attributes)

    assert refused({"n": {"DataType": "Number", "StringValue": "many"}}) == (
        "ParameterValueInvalid", "Could not cast message attribute 'n' value to number.", 400
    )  # fmt: skip
    assert refused({"t": {"DataType": "Text", "StringValue": "x"}})[1] == (
        "The message attribute 't' has an invalid message attribute type, the set of supported "
        "type prefixes is Binary, Number, and String."
    )
    assert refused({"b": {"DataType": "Binary", "StringValue": "x"}})[1] == (
        "The message attribute 'b' with type 'Binary' must use field 'Binary'."
    )
    assert refused({"s": {"DataType": "String", "StringValue": ""}})[1] == (
        "The message attribute 's' must contain non-empty message attribute value for message "
        "attribute type 'String'."
    )
    assert refused({".dot": {"DataType": "String", "StringValue": "x"}})[1] == (
        "Invalid message attribute name starting with character '.' was found."
    )
    assert refused({"a b": {"DataType": "String", "StringValue": "x"}})[1].startswith(
        "Invalid non-alphanumeric character '#x20' was found in the message attribute name."
    )
    eleven = {f"a{n}": {"DataType": "String", "StringValue": "x"} for n in range(11)}
    assert (
        refused(eleven)[1] == "Number of message attributes [11] exceeds the allowed maximum [10]."
    )
    fine = {
        "n": {"DataType": "Number.float", "StringValue": "1.5e3"},
        "b": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        "tags": {"DataType": "String.Array", "StringValue": '["a", 1]'},
    }
    assert sns.publish(TopicArn=arn, Message="m", MessageAttributes=fine)["MessageId"]


def test_tag_and_untag_a_topic(sns: Any) -> None:
    arn = sns.create_topic(Name=name(), Tags=[{"Key": "team", "Value": "ml"}])["TopicArn"]
    sns.tag_resource(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "prod"}])
    sns.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "platform"}])
    assert sns.list_tags_for_resource(ResourceArn=arn)["Tags"] == [
        {"Key": "stage", "Value": "prod"},
        {"Key": "team", "Value": "platform"},
    ]
    sns.untag_resource(ResourceArn=arn, TagKeys=["stage", "absent"])
    assert sns.list_tags_for_resource(ResourceArn=arn)["Tags"] == [
        {"Key": "team", "Value": "platform"}
    ]
    many = [{"Key": f"k{n}", "Value": "v"} for n in range(50)]
    assert error_of(sns.tag_resource, ResourceArn=arn, Tags=many) == (
        "TagLimitExceeded", "Could not complete request: tag quota of per resource exceeded", 400
    )  # fmt: skip
    missing = f"arn:aws:sns:us-east-1:{ACCOUNT}:{name()}"
    for call, kwargs in [
        (sns.list_tags_for_resource, {}),
        (sns.tag_resource, {"Tags": [{"Key": "k", "Value": "v"}]}),
        (sns.untag_resource, {"TagKeys": ["k"]}),
    ]:
        assert error_of(call, ResourceArn=missing, **kwargs) == (
            "ResourceNotFound", "Resource does not exist", 404
        )  # fmt: skip
