"""The `Publisher` other capabilities are given: publish by topic ARN from the event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sabio.config import Settings
from sabio.notifications import publishing
from sabio.notifications.errors import NotFound
from sabio.notifications.publisher import Publisher
from sabio.store import database
from sabio.store.repository import Repository


def test_publish_by_topic_arn(tmp_path: Path, listener: Any) -> None:
    settings = Settings(home=tmp_path, notification_retry_base_seconds=0.1)
    repository = Repository(database.create(settings.resolved_database_url))
    notifications = publishing.from_settings(repository, settings)
    topics = notifications.topics

    async def scenario() -> None:
        await notifications.start()
        try:
            topic = topics.create_topic("success", {}, {})
            notifications.subscribe(
                topic, "http", listener.url, {}, return_arn=True, base_url="http://127.0.0.1:1"
            )
            got = await asyncio.to_thread(listener.wait_for, lambda got: len(got) == 1)
            topics.confirm(topic, got[0].json()["Token"], authenticated=True)
            publisher: Publisher = notifications
            message_id = await publisher.publish(topic, '{"ok": true}', subject="Done")
            got = await asyncio.to_thread(listener.wait_for, lambda got: len(got) == 2)
            document = got[-1].json()
            assert document["MessageId"] == message_id
            assert document["Subject"] == "Done"
            assert document["Message"] == '{"ok": true}'
            with pytest.raises(NotFound):
                await publisher.publish(topic.replace("success", "missing"), "x")
        finally:
            await notifications.stop()
            repository.engine.dispose()

    asyncio.run(scenario())
