"""A `Publisher` that keeps every message in memory, by topic: the topics of these tests."""

from __future__ import annotations

import threading
import uuid


class RecordingPublisher:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[tuple[str, str]] = []

    async def publish(self, topic_arn: str, message: str, *, subject: str | None = None) -> str:
        with self._lock:
            self.messages.append((topic_arn, message))
        return str(uuid.uuid4())

    def on(self, topic_arn: str) -> list[str]:
        with self._lock:
            return [message for topic, message in self.messages if topic == topic_arn]
