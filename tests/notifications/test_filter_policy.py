"""Subscription filter policies: checked when set, and honoured when messages are delivered."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import botocore.exceptions
import pytest

# Long enough for deliveries that should not happen to have happened.
SETTLE = 0.5


def string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def number(value: str) -> dict[str, str]:
    return {"DataType": "Number", "StringValue": value}


def test_deliveries_follow_each_subscriptions_filter_policy(
    sns: Any, listener: Any, subscribe_confirmed: Any, subscribe_to: Any
) -> None:
    policies = {
        "/exact": {"kind": ["success"]},
        "/prefix": {"model": [{"prefix": "xgb"}], "kind": ["success", "error"]},
        "/anything-but": {"kind": [{"anything-but": ["error", "warning"]}]},
        "/numeric": {"latency": [{"numeric": [">", 0, "<=", 100]}]},
        "/exists": {"model": [{"exists": False}]},
        "/array": {"tags": ["gpu"]},
        "/suffix": {"model": [{"suffix": "boost"}, {"equals-ignore-case": "LINEAR"}]},
        "/or": {"$or": [{"kind": ["warning"]}, {"latency": [{"numeric": [">", 200]}]}]},
    }
    topic, _, _ = subscribe_confirmed(sns, listener, "/all")
    for path, policy in policies.items():
        subscribe_to(sns, topic, listener, path, FilterPolicy=json.dumps(policy))
    body_arn, _ = subscribe_to(sns, topic, listener, "/body")
    sns.set_subscription_attributes(
        SubscriptionArn=body_arn, AttributeName="FilterPolicyScope", AttributeValue="MessageBody"
    )
    sns.set_subscription_attributes(
        SubscriptionArn=body_arn,
        AttributeName="FilterPolicy",
        AttributeValue=json.dumps(
            {"result": {"status": ["done"], "score": [{"numeric": [">=", 0.5]}]}}
        ),
    )
    messages = {
        "m1": {"kind": string("success"), "model": string("xgboost"), "latency": number("42")},
        "m2": {"kind": string("error"), "model": string("linear"), "latency": number("250")},
        "m3": {"kind": string("warning"), "latency": number("100")},
        "m4": {
            "kind": string("started"),
            "tags": {"DataType": "String.Array", "StringValue": '["cpu", "gpu"]'},
        },
        "m5": {},
    }
    for text, attributes in messages.items():
        sns.publish(TopicArn=topic, Message=text, MessageAttributes=attributes)
    bodies = [
        json.dumps({"result": {"status": "done", "score": 0.9}}),
        json.dumps({"result": {"status": "done", "score": 0.1}}),
        json.dumps({"result": {"status": ["failed", "done"], "score": 1}}),
    ]
    for body in bodies:
        sns.publish(TopicArn=topic, Message=body)
    expected = {
        "/all": {*messages, *bodies},
        "/exact": {"m1"},
        "/prefix": {"m1"},
        "/anything-but": {"m1", "m4"},
        "/numeric": {"m1", "m3"},
        "/exists": {"m3", "m4", "m5", *bodies},
        "/array": {"m4"},
        "/suffix": {"m1", "m2"},
        "/or": {"m2", "m3"},
        "/body": {bodies[0], bodies[2]},
    }
    total = sum(len(wanted) for wanted in expected.values())
    listener.wait_for(lambda got: len(_notifications(got)) >= total)
    time.sleep(SETTLE)
    got = _notifications(listener.received)
    assert len(got) == total
    for path, wanted in expected.items():
        assert {m for p, m in got if p == path} == wanted, path


def _notifications(received: list[Any]) -> list[tuple[str, str]]:
    return [
        (r.path, r.json()["Message"])
        for r in received
        if r.headers["x-amz-sns-message-type"] == "Notification"
    ]


def test_filter_policies_are_checked_and_shown(sns: Any) -> None:
    topic = sns.create_topic(Name=f"filters-{uuid.uuid4().hex[:8]}")["TopicArn"]
    arn = sns.subscribe(
        TopicArn=topic,
        Protocol="http",
        Endpoint="http://127.0.0.1:9/hook",
        Attributes={"FilterPolicy": '{"kind": ["success"]}'},
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]
    attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    assert attributes["FilterPolicy"] == '{"kind": ["success"]}'
    assert attributes["FilterPolicyScope"] == "MessageAttributes"

    def refused(name: str, value: str) -> str:
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            sns.set_subscription_attributes(
                SubscriptionArn=arn, AttributeName=name, AttributeValue=value
            )
        assert caught.value.response["Error"]["Code"] == "InvalidParameter"
        return str(caught.value.response["Error"]["Message"])

    assert refused("FilterPolicy", "{") == "Invalid parameter: FilterPolicy: failed to parse JSON."
    six_keys = json.dumps({f"k{n}": ["v"] for n in range(6)})
    assert refused("FilterPolicy", six_keys) == (
        "Invalid parameter: FilterPolicy: Filter policy can not have more than 5 keys"
    )
    assert refused("FilterPolicy", '{"k": [{"regex": "a.*"}]}') == (
        "Invalid parameter: FilterPolicy: Unrecognized match type regex"
    )
    assert refused("FilterPolicy", '{"k": [{"numeric": [">", "a"]}]}') == (
        "Invalid parameter: FilterPolicy: Value of > must be numeric"
    )
    # Nesting is for the message body only.
    assert refused("FilterPolicy", '{"a": {"b": ["c"]}}') == (
        "Invalid parameter: Filter policy scope MessageAttributes does not support nested "
        "filter policy"
    )
    assert refused("RawMessageDelivery", "yes") == (
        "Invalid parameter: RawMessageDelivery: Invalid value [yes]. Must be true or false."
    )
    assert refused("FilterPolicyScope", "Everything") == (
        "Invalid parameter: FilterPolicyScope: Invalid value [Everything]. "
        "Please use either MessageBody or MessageAttributes"
    )
    sns.set_subscription_attributes(
        SubscriptionArn=arn, AttributeName="FilterPolicyScope", AttributeValue="MessageBody"
    )
    sns.set_subscription_attributes(
        SubscriptionArn=arn, AttributeName="FilterPolicy", AttributeValue='{"a": {"b": ["c"]}}'
    )
    # An empty policy removes it.
    sns.set_subscription_attributes(
        SubscriptionArn=arn, AttributeName="FilterPolicy", AttributeValue=""
    )
    assert "FilterPolicy" not in sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]


# What SNS answers for a bad policy: the reason, after `Invalid parameter: FilterPolicy: `
# (SetSubscriptionAttributes) or `Invalid parameter: Attributes Reason: FilterPolicy: `
# (Subscribe). SNS appends its parser's position to some; Sabio does not.
REASONS = {
    '{"k": [["v"]]}': "Match value must be String, number, true, false, or null",
    '{"k": [{"wildcard": "a*"}]}': "Unrecognized match type wildcard",
    '{"k": [{"suffix": "v", "prefix": "w"}]}': "Only one key allowed in match expression",
    '{"k": [{"prefix": 100}]}': "prefix match pattern must be a string",
    '{"k": [{"suffix": null}]}': "suffix match pattern must be a string",
    '{"k": {"suffix": "v"}}': '"suffix" must be an object or an array',
    '{"k": "v"}': '"k" must be an object or an array',
    '{"k": [{"exists": "no"}]}': "exists match pattern must be either true or false.",
    '{"k": [{"anything-but": {"exists": false}}]}': "Unsupported anything-but pattern: exists",
    '{"k": [{"anything-but": {"prefix": false}}]}': "prefix match pattern must be a string",
    '{"k": [{"numeric": []}]}': "Invalid member in numeric match: ]",
    '{"k": [{"numeric": [1, "<="]}]}': "Invalid member in numeric match: 1",
    '{"k": [{"numeric": ["~", 1]}]}': "Unrecognized numeric range operator: ~",
    '{"k": [{"numeric": ["=", "000"]}]}': "Value of equals must be numeric",
    '{"k": [{"numeric": [">="]}]}': "Value of >= must be numeric",
    '{"k": [{"numeric": ["<", 100, ">", 10]}]}': "Too many elements in numeric expression",
    '{"k": [{"numeric": [">=", 1, ">", 2]}]}': "Bad numeric range operator: >",
    '{"k": [{"numeric": [">", 20, 30]}]}': "Bad value in numeric range: 30",
    '{"k": [{"numeric": [">", 20, "<="]}]}': "Value of <= must be numeric",
    '{"k": [{"numeric": [">", 3, "<", 1]}]}': "Bottom must be less than top",
    '{"k": [{"numeric": [">", 2, "<", 3, "<", 5]}]}': "Too many terms in numeric range expression",
}


def test_refused_policies_get_sns_wording_for_the_operation_that_set_them(sns: Any) -> None:
    topic = sns.create_topic(Name=f"wording-{uuid.uuid4().hex[:8]}")["TopicArn"]
    endpoint = "http://127.0.0.1:9/hook"
    arn = sns.subscribe(
        TopicArn=topic, Protocol="http", Endpoint=endpoint, ReturnSubscriptionArn=True
    )["SubscriptionArn"]

    def message(call: Any, **kwargs: Any) -> str:
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            call(**kwargs)
        error = caught.value.response["Error"]
        assert (error["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (
            "InvalidParameter",
            400,
        )
        return str(error["Message"])

    for policy, reason in REASONS.items():
        assert message(
            sns.set_subscription_attributes,
            SubscriptionArn=arn,
            AttributeName="FilterPolicy",
            AttributeValue=policy,
        ) == (f"Invalid parameter: FilterPolicy: {reason}"), policy
        assert message(
            sns.subscribe,
            TopicArn=topic,
            Protocol="http",
            Endpoint=f"{endpoint}/other",
            Attributes={"FilterPolicy": policy},
        ) == (f"Invalid parameter: Attributes Reason: FilterPolicy: {reason}"), policy
    assert message(
        sns.subscribe,
        TopicArn=topic,
        Protocol="http",
        Endpoint=f"{endpoint}/other",
        Attributes={"RawMessageDelivery": "yes"},
    ) == (
        "Invalid parameter: Attributes Reason: RawMessageDelivery: Invalid value [yes]. "
        "Must be true or false."
    )


def test_nested_lists_count_once_per_level_toward_the_combination_limit(sns: Any) -> None:
    topic = sns.create_topic(Name=f"nested-{uuid.uuid4().hex[:8]}")["TopicArn"]
    arn = sns.subscribe(
        TopicArn=topic,
        Protocol="http",
        Endpoint="http://127.0.0.1:9/hook",
        Attributes={"FilterPolicyScope": "MessageBody"},
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]
    # 3 levels x 4 values, 2 x 3 and 1 x 3: 216 combinations, over SNS's 150.
    policy = {
        "key_a": {"key_b": {"key_c": ["one", "two", "three", "four"]}},
        "key_d": {"key_e": ["one", "two", "three"]},
        "key_f": ["one", "two", "three"],
    }
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sns.set_subscription_attributes(
            SubscriptionArn=arn, AttributeName="FilterPolicy", AttributeValue=json.dumps(policy)
        )
    assert caught.value.response["Error"]["Message"] == (
        "Invalid parameter: FilterPolicy: Filter policy is too complex"
    )
    del policy["key_f"]  # 12 x 6 = 72
    sns.set_subscription_attributes(
        SubscriptionArn=arn, AttributeName="FilterPolicy", AttributeValue=json.dumps(policy)
    )
    # Nesting deeper than the limit itself is refused the same way, never a server error.
    deep = '{"a": ' * 400 + '["x"]' + "}" * 400
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sns.set_subscription_attributes(
            SubscriptionArn=arn, AttributeName="FilterPolicy", AttributeValue=deep
        )
    assert caught.value.response["Error"]["Message"] == (
        "Invalid parameter: FilterPolicy: Filter policy is too complex"
    )
