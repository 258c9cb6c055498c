"""The invocation queue's contract, run on SQLite and on a real PostgreSQL: leases exclude
other claimers until they run out, answered requests leave, expired ones are handed out for
answering, and concurrent claimers never share a request."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sabio.asyncinference.queue import AsyncRequest
from sabio.asyncinference.sql_queue import SqlInvocationQueue
from sabio.store import database
from support.postgres import fresh_database

T0 = 1_000_000.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlInvocationQueue]:
    if request.param == "sqlite":
        engine = database.create(f"sqlite:///{tmp_path / 'db' / 'sabio.db'}")
        try:
            yield SqlInvocationQueue(engine)
        finally:
            engine.dispose()
        return
    with fresh_database(request.getfixturevalue("postgres_url")) as url:
        engine = database.create(url)
        try:
            yield SqlInvocationQueue(engine)
        finally:
            engine.dispose()


def request(endpoint: str = "ep", at: float = T0, ttl: float = 3600, body: bytes = b"{}"):
    rid = str(uuid.uuid4())
    return AsyncRequest(
        id=rid,
        endpoint=endpoint,
        inference_id=rid,
        received_at=at,
        expires_at=at + ttl,
        invocation_timeout=900.0,
        request={"EndpointName": endpoint, "OutputLocation": f"s3://b/{rid}.out"},
        body=body,
    )


def test_a_lease_excludes_others_until_it_runs_out(queue: SqlInvocationQueue) -> None:
    first, second = request(at=T0), request(at=T0 + 1, body=b"\x00\xffbinary")
    queue.enqueue(second)
    queue.enqueue(first)
    claimed = queue.claim("EP", 10, 30, T0 + 2)
    assert [r.id for r in claimed] == [first.id, second.id]  # oldest first
    assert claimed[1].body == b"\x00\xffbinary" and claimed[0].attempts == 1
    assert claimed[0].request == first.request
    assert queue.claim("ep", 10, 30, T0 + 3) == []
    assert queue.extend([claimed[0].lease_token or ""], 30, T0 + 20) == 2
    assert queue.claim("ep", 10, 30, T0 + 40) == []  # renewed until T0 + 50
    again = queue.claim("ep", 1, 30, T0 + 51)
    assert [r.id for r in again] == [first.id] and again[0].attempts == 2
    assert queue.complete(claimed[0]) is False  # that lease was lost
    assert queue.complete(again[0]) is True
    assert queue.complete(again[0]) is False
    backlog = queue.backlog(["ep", "other"])
    assert list(backlog) == ["ep"] and backlog["ep"].size == 1
    assert backlog["ep"].oldest_received_at == T0 + 1


def test_release_returns_a_request_and_purge_drops_an_endpoint(queue: SqlInvocationQueue):
    queue.enqueue(request("a"))
    queue.enqueue(request("b"))
    (held,) = queue.claim("a", 5, 30, T0)
    queue.release(held)
    assert [r.id for r in queue.claim("a", 5, 30, T0 + 1)] == [held.id]
    assert queue.purge("a") == 1
    assert set(queue.backlog(["a", "b"])) == {"b"}


def test_expired_requests_are_handed_out_once_for_answering(queue: SqlInvocationQueue):
    stale, fresh = request(ttl=60), request(ttl=600)
    queue.enqueue(stale)
    queue.enqueue(fresh)
    later = T0 + 120
    assert [r.id for r in queue.expired(later, 10)] == [stale.id]
    assert queue.expired(later, 10) == []
    assert [r.id for r in queue.claim("ep", 10, 30, later)] == [fresh.id]


def test_requests_of_deleted_endpoints_are_handed_out_once_for_failing(
    queue: SqlInvocationQueue,
) -> None:
    kept, orphan = request("Kept"), request("gone")
    queue.enqueue(kept)
    queue.enqueue(orphan)
    (held,) = queue.abandoned(["KEPT"], 10, 30, T0)
    assert held.id == orphan.id and held.attempts == 1
    assert queue.abandoned(["kept"], 10, 30, T0 + 1) == []  # leased
    again = queue.abandoned([], 10, 30, T0 + 31)
    assert [r.id for r in again] == [kept.id, orphan.id]  # the lease ran out
    assert queue.complete(again[1]) and queue.complete(again[0])
    assert queue.abandoned([], 10, 30, T0 + 100) == []


def test_concurrent_claimers_never_share_a_request(queue: SqlInvocationQueue) -> None:
    ids = set()
    for index in range(120):
        item = request(at=T0 + index)
        ids.add(item.id)
        queue.enqueue(item)
    seen: list[str] = []
    lock = threading.Lock()

    def claimer() -> None:
        while True:
            batch = queue.claim("ep", 7, 30, T0 + 500)
            if not batch:
                return
            with lock:
                seen.extend(r.id for r in batch)
            for item in batch:
                assert queue.complete(item)

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == sorted(ids)
    assert queue.backlog(["ep"]) == {}


def test_polling_an_empty_queue_does_not_wait_for_the_write_lock(tmp_path: Path) -> None:
    """The dispatcher polls twice a second; while the queue has nothing to hand out, a poll
    must not queue behind (or block) whoever is writing to the database."""
    path = tmp_path / "db" / "sabio.db"
    engine = database.create(f"sqlite:///{path}")
    queue = SqlInvocationQueue(engine)
    queue.enqueue(request(endpoint="other"))
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        assert queue.claim("ep", 4, 30, T0) == []
        assert queue.expired(T0, 10) == []
        assert time.monotonic() - started < 2
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        engine.dispose()
