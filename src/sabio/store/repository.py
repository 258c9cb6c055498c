"""Reads and writes resources and tags. Knows nothing of the wire."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from sabio.store.entities import ListQuery, Resource
from sabio.store.rows import ResourceRow, TagRow

_SORT_COLUMNS = {
    "Name": ResourceRow.name_key,
    "CreationTime": ResourceRow.created_at,
    "Status": ResourceRow.status,
    "LastModifiedTime": ResourceRow.updated_at,
}


class AlreadyExists(Exception):
    """A resource of that kind and name is already stored."""


def _entity(row: ResourceRow) -> Resource:
    return Resource(
        kind=row.kind,
        name=row.name,
        arn=row.arn,
        spec=dict(row.spec),
        created_at=row.created_at,
        updated_at=row.updated_at,
        status=row.status,
        state=dict(row.state or {}),
    )


class Repository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def create(self, resource: Resource, tags: dict[str, str] | None = None) -> Resource:
        row = ResourceRow(
            kind=resource.kind,
            name=resource.name,
            name_key=resource.name.lower(),
            arn=resource.arn,
            status=resource.status,
            spec=resource.spec,
            state=resource.state,
            created_at=resource.created_at,
            updated_at=resource.updated_at,
        )
        try:
            with self._session() as session:
                session.add(row)
                session.flush()
                for key, value in (tags or {}).items():
                    session.merge(TagRow(arn=resource.arn, key=key, value=value))
        except IntegrityError as exc:
            raise AlreadyExists(resource.name) from exc
        return resource

    def get(self, kind: str, name: str) -> Resource | None:
        with self._session() as session:
            row = session.scalar(
                select(ResourceRow).where(
                    ResourceRow.kind == kind, ResourceRow.name_key == name.lower()
                )
            )
            return _entity(row) if row else None

    def get_by_arn(self, arn: str) -> Resource | None:
        with self._session() as session:
            row = session.scalar(select(ResourceRow).where(ResourceRow.arn == arn))
            return _entity(row) if row else None

    def all(self, kind: str, statuses: tuple[str, ...] = ()) -> builtins.list[Resource]:
        with self._session() as session:
            query = select(ResourceRow).where(ResourceRow.kind == kind)
            if statuses:
                query = query.where(ResourceRow.status.in_(statuses))
            return [_entity(row) for row in session.scalars(query.order_by(ResourceRow.id))]

    def list(self, kind: str, query: ListQuery) -> list[Resource]:
        """One page (`limit` + 1 rows, so the caller knows whether another page follows)."""
        statement = select(ResourceRow).where(ResourceRow.kind == kind)
        if query.name_contains:
            needle = query.name_contains.lower().replace("\\", "\\\\")
            needle = needle.replace("%", "\\%").replace("_", "\\_")
            statement = statement.where(ResourceRow.name_key.like(f"%{needle}%", escape="\\"))
        if query.created_after is not None:
            statement = statement.where(ResourceRow.created_at > query.created_after)
        if query.created_before is not None:
            statement = statement.where(ResourceRow.created_at < query.created_before)
        if query.modified_after is not None:
            statement = statement.where(ResourceRow.updated_at > query.modified_after)
        if query.modified_before is not None:
            statement = statement.where(ResourceRow.updated_at < query.modified_before)
        if query.status is not None:
            statement = statement.where(ResourceRow.status == query.status)
        column = _SORT_COLUMNS.get(query.sort_by, ResourceRow.created_at)
        order = column.desc() if query.descending else column.asc()
        tiebreak = ResourceRow.id.desc() if query.descending else ResourceRow.id.asc()
        statement = statement.order_by(order, tiebreak).offset(query.offset).limit(query.limit + 1)
        with self._session() as session:
            return [_entity(row) for row in session.scalars(statement)]

    def update(
        self,
        kind: str,
        name: str,
        *,
        status: str | None = None,
        state: dict[str, Any] | None = None,
        spec: dict[str, Any] | None = None,
        expect_status: tuple[str, ...] = (),
    ) -> Resource | None:
        """Change a resource; None if it is gone or not in one of `expect_status`."""
        with self._session() as session:
            row = session.scalar(
                select(ResourceRow)
                .where(ResourceRow.kind == kind, ResourceRow.name_key == name.lower())
                .with_for_update()
            )
            if row is None or (expect_status and row.status not in expect_status):
                return None
            if status is not None:
                row.status = status
            if state is not None:
                row.state = state
            if spec is not None:
                row.spec = spec
            row.updated_at = time.time()
            return _entity(row)

    def delete(self, kind: str, name: str) -> bool:
        with self._session() as session:
            row = session.scalar(
                select(ResourceRow).where(
                    ResourceRow.kind == kind, ResourceRow.name_key == name.lower()
                )
            )
            if row is None:
                return False
            session.execute(delete(TagRow).where(TagRow.arn == row.arn))
            session.delete(row)
            return True

    def count(self, kind: str) -> int:
        with self._session() as session:
            return int(session.scalar(select(func.count()).where(ResourceRow.kind == kind)) or 0)

    # Tags

    def tags(self, arn: str) -> dict[str, str]:
        with self._session() as session:
            rows = session.scalars(select(TagRow).where(TagRow.arn == arn).order_by(TagRow.key))
            return {row.key: row.value for row in rows}

    def set_tags(self, arn: str, tags: dict[str, str]) -> None:
        with self._session() as session:
            for key, value in tags.items():
                session.merge(TagRow(arn=arn, key=key, value=value))

    def delete_tags(self, arn: str, keys: builtins.list[str]) -> None:
        with self._session() as session:
            session.execute(delete(TagRow).where(TagRow.arn == arn, TagRow.key.in_(keys)))
