"""The invocation queue on the metadata database (SQLite or PostgreSQL).

A claim is one `UPDATE ... WHERE id IN (SELECT ... LIMIT n)`: on PostgreSQL the inner select
takes `FOR UPDATE SKIP LOCKED`, so concurrent claimers pass each other by; on SQLite the single
statement runs under the database's one write lock, so it is atomic as it stands.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, delete, func, insert, or_, select, update

from sabio.asyncinference.queue import IN_PROGRESS, PENDING, AsyncRequest, Backlog
from sabio.store.rows import AsyncInvocationRow as Row

_INSERT = insert(Row.metadata.tables[Row.__tablename__])


class SqlInvocationQueue:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def enqueue(self, request: AsyncRequest) -> None:
        # Parameters apart from the statement: the statement stays cached, however big the body.
        with self.engine.begin() as connection:
            connection.execute(
                _INSERT,
                {
                    "id": request.id,
                    "endpoint": request.endpoint.lower(),
                    "inference_id": request.inference_id,
                    "status": PENDING,
                    "received_at": request.received_at,
                    "expires_at": request.expires_at,
                    "invocation_timeout": request.invocation_timeout,
                    "lease_token": None,
                    "lease_until": None,
                    "attempts": 0,
                    "request": request.request,
                    "body": request.body,
                },
            )

    def claim(
        self, endpoint: str, limit: int, lease_seconds: float, now: float
    ) -> list[AsyncRequest]:
        claimable = and_(Row.endpoint == endpoint.lower(), _available(now), Row.expires_at >= now)
        return self._lease(claimable, limit, lease_seconds, now)

    def expired(self, now: float, limit: int) -> list[AsyncRequest]:
        return self._lease(and_(_available(now), Row.expires_at < now), limit, 60.0, now)

    def abandoned(
        self, keep: Sequence[str], limit: int, lease_seconds: float, now: float
    ) -> list[AsyncRequest]:
        kept = [name.lower() for name in keep]
        return self._lease(
            and_(_available(now), Row.endpoint.not_in(kept)), limit, lease_seconds, now
        )

    def _lease(
        self, condition: ColumnElement[bool], limit: int, lease_seconds: float, now: float
    ) -> list[AsyncRequest]:
        if limit <= 0:
            return []
        # Polled about twice a second per endpoint and mostly empty: a read finds that out
        # without taking the database's write lock (a request enqueued after this read wakes
        # the dispatcher, which looks again).
        with self.engine.connect() as connection:
            if connection.execute(select(Row.id).where(condition).limit(1)).first() is None:
                return []
        token = uuid.uuid4().hex
        chosen = (
            select(Row.id)
            .where(condition)
            .order_by(Row.received_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        with self.engine.begin() as connection:
            claimed = connection.execute(
                update(Row)
                .where(Row.id.in_(chosen), _available(now))
                .values(
                    status=IN_PROGRESS,
                    lease_token=token,
                    lease_until=now + lease_seconds,
                    attempts=Row.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )
            if not claimed.rowcount:
                return []
            rows = connection.execute(
                select(Row).where(Row.lease_token == token).order_by(Row.received_at)
            ).all()
        return [_entity(row) for row in rows]

    def extend(self, tokens: Sequence[str], lease_seconds: float, now: float) -> int:
        if not tokens:
            return 0
        with self.engine.begin() as connection:
            result = connection.execute(
                update(Row)
                .where(Row.lease_token.in_(list(tokens)), Row.status == IN_PROGRESS)
                .values(lease_until=now + lease_seconds)
            )
        return int(result.rowcount)

    def complete(self, request: AsyncRequest) -> bool:
        with self.engine.begin() as connection:
            result = connection.execute(
                delete(Row).where(Row.id == request.id, Row.lease_token == request.lease_token)
            )
        return bool(result.rowcount)

    def release(self, request: AsyncRequest) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(Row)
                .where(Row.id == request.id, Row.lease_token == request.lease_token)
                .values(status=PENDING, lease_token=None, lease_until=None)
            )

    def backlog(self, endpoints: Sequence[str]) -> dict[str, Backlog]:
        keys = [e.lower() for e in endpoints]
        if not keys:
            return {}
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(Row.endpoint, func.count(), func.min(Row.received_at))
                .where(Row.endpoint.in_(keys))
                .group_by(Row.endpoint)
            ).all()
        return {str(name): Backlog(int(count), oldest) for name, count, oldest in rows}

    def purge(self, endpoint: str) -> int:
        with self.engine.begin() as connection:
            result = connection.execute(delete(Row).where(Row.endpoint == endpoint.lower()))
        return int(result.rowcount)


def _available(now: float) -> ColumnElement[bool]:
    """Waiting, or claimed by someone whose lease has run out."""
    return or_(Row.status == PENDING, and_(Row.status == IN_PROGRESS, Row.lease_until < now))


def _entity(row: Any) -> AsyncRequest:
    return AsyncRequest(
        id=row.id,
        endpoint=row.endpoint,
        inference_id=row.inference_id,
        received_at=row.received_at,
        expires_at=row.expires_at,
        invocation_timeout=row.invocation_timeout,
        request=dict(row.request),
        body=row.body,
        attempts=row.attempts,
        lease_token=row.lease_token,
    )
