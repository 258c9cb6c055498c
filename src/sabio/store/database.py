"""Engine creation and schema migration for SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, NoSuchModuleError, OperationalError

from sabio.errors import SabioError

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class DatabaseUnavailableError(SabioError):
    """The metadata database cannot be reached or its URL is wrong."""

    code = "DatabaseUnavailable"
    status = 503


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<an unparsable database URL>"


@contextmanager
def _reported(url: str) -> Iterator[None]:
    """Turn a database that cannot be used into one clear error naming it (without password)."""
    try:
        yield
    except (OperationalError, InterfaceError, ArgumentError, NoSuchModuleError, ImportError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise DatabaseUnavailableError(
            f"Cannot use the metadata database {safe_url(url)}: {reason}"
        ) from None


def create(url: str) -> Engine:
    """An engine for the URL, with the schema migrated to the newest revision."""
    with _reported(url):
        engine = _engine(url)
        migrate(engine)
        return engine


def connect(url: str) -> Engine:
    """An engine for the URL without migrating (to inspect a database)."""
    with _reported(url):
        engine = _engine(url)
        with engine.connect():
            pass
        return engine


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


def migrate(engine: Engine) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
