"""Every store test runs once per backend: SQLite (WAL) in tmp_path, and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from sabio.store import database
from sabio.store.repository import Repository
from support.postgres import fresh_database


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of the parametrized backend, private to one test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'sabio.db'}"
        return
    server_url = request.getfixturevalue("postgres_url")
    with fresh_database(server_url) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    created = database.create(database_url)
    try:
        yield created
    finally:
        created.dispose()


@pytest.fixture
def repo(engine: Engine) -> Repository:
    return Repository(engine)
