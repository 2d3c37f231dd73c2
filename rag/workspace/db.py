"""The app's SQL database: SQLite by default, PostgreSQL by URL, upgraded by Alembic on open.

`Database(url)` connects, brings the schema to the newest migration (under a PostgreSQL
advisory lock, so several app processes starting together upgrade once) and hands out
transactions: `with db.session() as s: ...` commits at the end, rolls back on an error, and turns
SQLAlchemy's exceptions into a WorkspaceError naming the database (without its password).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from rag.errors import ConfigError, WorkspaceError

log = logging.getLogger(__name__)

MIGRATION_LOCK = 72_151_101  # the advisory lock id held while PostgreSQL is upgraded


def parse_url(url: str) -> URL:
    """The database URL as SQLAlchemy reads it; a plain postgresql:// URL uses psycopg 3."""
    try:
        parsed = make_url(url.strip())
    except ArgumentError:
        raise ConfigError(f"DATABASE_URL is not a database URL: {url!r}. Use sqlite:///PATH "
                          "or postgresql://USER:PASSWORD@HOST/DB") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(f"DATABASE_URL must be SQLite or PostgreSQL, not "
                          f"{parsed.get_backend_name()!r}")
    return parsed


class Database:
    """A connection pool to the app's database, migrated to the newest schema."""

    def __init__(self, url: str) -> None:
        self.url = parse_url(url)
        self.label = self.url.render_as_string(hide_password=True)
        self.engine = self._connect()
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        with self._errors("could not be upgraded"):
            self._migrate()

    def _connect(self) -> Engine:
        options: dict[str, Any] = {"pool_pre_ping": True}
        if self.url.get_backend_name() == "sqlite":
            if self.url.database and self.url.database != ":memory:":
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
        try:
            engine = create_engine(self.url, **options)
        except (NoSuchModuleError, ModuleNotFoundError) as exc:
            raise ConfigError(f"DATABASE_URL {self.label}: no driver ({exc}).") from None
        if self.url.get_backend_name() == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        return engine

    def _migrate(self) -> None:
        config = Config()
        config.set_main_option("script_location",
                               str(files("rag.workspace") / "migrations"))
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"),
                                   {"id": MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._errors("failed"), self._sessions.begin() as session:
            yield session

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            reason = getattr(exc, "orig", None) or exc
            raise WorkspaceError(f"The app's database {self.label} {what}: {reason}. "
                                 "Check DATABASE_URL and that the database is reachable."
                                 ) from exc

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    """Foreign keys on (SQLite's default is off); WAL so readers do not wait for a writer."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
