"""What other capabilities need of notifications: publish a message to a topic by ARN."""

from __future__ import annotations

from typing import Protocol


class Publisher(Protocol):
    async def publish(self, topic_arn: str, message: str, *, subject: str | None = None) -> str:
        """Accept `message` for delivery to every subscription of `topic_arn` and return its
        message id; delivery happens in the background, retried with back-off. Raises
        `sabio.errors.SabioError` (a not-found error) when the topic does not exist."""
        ...
