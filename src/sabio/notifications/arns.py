"""SNS ARNs and names: `arn:aws:sns:<region>:<account>:<topic>` for topics, with
`:<subscription id>` appended for subscriptions, checked the way SNS checks them."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sabio.notifications.errors import invalid

_TOPIC_NAME = re.compile(r"[A-Za-z0-9_-]{1,256}")
_SUBSCRIPTION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def valid_topic_name(name: str) -> bool:
    return _TOPIC_NAME.fullmatch(name) is not None


@dataclass(frozen=True)
class SnsArns:
    region: str
    account_id: str

    def topic(self, name: str) -> str:
        return f"arn:aws:sns:{self.region}:{self.account_id}:{name}"

    def new_subscription(self, topic_arn: str) -> str:
        return f"{topic_arn}:{uuid.uuid4()}"

    def check_topic(self, arn: str, member: str = "TopicArn") -> str:
        """The topic name an ARN of this server's region names; InvalidParameter otherwise."""
        parts = self._split(arn, member)
        if len(parts) != 6 or not valid_topic_name(parts[5]):
            raise invalid(member)
        return parts[5]

    def check_subscription(self, arn: str) -> None:
        parts = self._split(arn, "SubscriptionArn")
        if (
            len(parts) != 7
            or not valid_topic_name(parts[5])
            or not _SUBSCRIPTION_ID.fullmatch(parts[6])
        ):
            raise invalid("SubscriptionId")

    def _split(self, arn: str, member: str) -> list[str]:
        parts = arn.split(":")
        if len(parts) < 6:
            raise invalid(member, f"An ARN must have at least 6 elements, not {len(parts)}")
        if parts[0] != "arn" or parts[2] != "sns" or parts[3] != self.region:
            raise invalid(member)
        if parts[4] != self.account_id or not parts[1].startswith("aws"):
            raise invalid(member)
        return parts
