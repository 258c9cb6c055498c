"""The topic and subscription attributes Sabio honours, checked the way SNS checks them.

SNS knows many more (policies, KMS keys, redrive policies, FIFO). Sabio refuses those by name
rather than storing settings it would not act on."""

from __future__ import annotations

from sabio.notifications import filter_policy
from sabio.notifications.errors import InvalidParameter, invalid

TOPIC_SETTABLE = ("DisplayName", "SignatureVersion")
TOPIC_UNSUPPORTED = frozenset(
    {
        "Policy", "DeliveryPolicy", "KmsMasterKeyId", "TracingConfig", "FifoTopic",
        "ContentBasedDeduplication", "ArchivePolicy", "DataProtectionPolicy", "FifoThroughputScope",
        "ApplicationSuccessFeedbackRoleArn", "ApplicationSuccessFeedbackSampleRate",
        "ApplicationFailureFeedbackRoleArn", "HTTPSuccessFeedbackRoleArn",
        "HTTPSuccessFeedbackSampleRate", "HTTPFailureFeedbackRoleArn",
        "LambdaSuccessFeedbackRoleArn", "LambdaSuccessFeedbackSampleRate",
        "LambdaFailureFeedbackRoleArn", "SQSSuccessFeedbackRoleArn",
        "SQSSuccessFeedbackSampleRate", "SQSFailureFeedbackRoleArn",
        "FirehoseSuccessFeedbackRoleArn", "FirehoseSuccessFeedbackSampleRate",
        "FirehoseFailureFeedbackRoleArn",
    }
)  # fmt: skip

SUBSCRIPTION_SETTABLE = ("RawMessageDelivery", "FilterPolicy", "FilterPolicyScope")
SUBSCRIPTION_UNSUPPORTED = frozenset(
    {"DeliveryPolicy", "RedrivePolicy", "SubscriptionRoleArn", "ReplayPolicy"}
)


def topic_attribute(name: str, value: str, *, member: str) -> tuple[str, str]:
    """The attribute as stored; `member` is `Attributes` (CreateTopic) or `AttributeName`."""
    if name == "FifoTopic" and value.lower() == "false":
        return name, "false"
    if name in TOPIC_UNSUPPORTED:
        if name == "FifoTopic":
            raise invalid(member, "Sabio does not support FIFO topics")
        raise invalid(member, f"Sabio does not support the topic attribute {name}")
    if name == "DisplayName":
        if len(value) > 100:
            raise invalid(member, "DisplayName")
        return name, value
    if name == "SignatureVersion":
        if value not in ("1", "2"):
            raise invalid(member, "SignatureVersion")
        return name, value
    if member == "AttributeName":
        raise invalid("AttributeName")
    raise invalid(member, f"Unknown attribute {name}")


def subscription_attribute(name: str, value: str, *, member: str) -> tuple[str, str]:
    if name in SUBSCRIPTION_UNSUPPORTED:
        raise invalid(member, f"Sabio does not support the subscription attribute {name}")
    if name == "RawMessageDelivery":
        if value.lower() not in ("true", "false"):
            reason = f"RawMessageDelivery: Invalid value [{value}]. Must be true or false."
            if member == "AttributeName":
                raise InvalidParameter(f"Invalid parameter: {reason}")
            raise invalid(member, reason)
        return name, value.lower()
    if name == "FilterPolicyScope":
        if value not in filter_policy.SCOPES:
            raise InvalidParameter(
                f"Invalid parameter: FilterPolicyScope: Invalid value [{value}]. "
                "Please use either MessageBody or MessageAttributes"
            )
        return name, value
    if name == "FilterPolicy":
        return name, value
    if member == "AttributeName":
        raise invalid("AttributeName")
    raise invalid(member, f"Unknown attribute {name}")


def merged_subscription_attributes(
    current: dict[str, str], changes: dict[str, str], *, member: str
) -> dict[str, str]:
    """A subscription's attributes after `changes`, each already checked alone. The filter
    policy is checked against the scope it will be applied in; an empty policy removes it.
    `member` is `Attributes` (Subscribe) or `AttributeName` (SetSubscriptionAttributes)."""
    merged = {**current, **changes}
    if merged.get("FilterPolicy") == "":
        del merged["FilterPolicy"]
    elif "FilterPolicy" in merged:
        merged.setdefault("FilterPolicyScope", "MessageAttributes")
        filter_policy.check(merged["FilterPolicy"], merged["FilterPolicyScope"], member=member)
    return merged
