"""Schema migrations from code: bring a database to head, or tell how far behind it is.

Every migration runs under the migration lock, in one transaction: on PostgreSQL a
transaction-scoped advisory lock (``pg_advisory_xact_lock``) taken before anything is
read, on SQLite the database's write lock (``BEGIN IMMEDIATE``). Two processes that find
the same database behind (two servers starting on an empty database, a server and a
``hypersweep db upgrade``) therefore take turns: the first migrates, the second then reads
the revision the first left and has nothing to do. Both databases run DDL inside a
transaction, so a migration that fails half-way leaves the database as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text

import hypersweep.migrations
from hypersweep.service.db import is_sqlite

__all__ = [
    "ADVISORY_LOCK_KEY",
    "LOCK_WAIT_SECONDS",
    "Prepared",
    "SchemaBehind",
    "alembic_config",
    "current_revision",
    "head_revision",
    "is_current",
    "locked",
    "prepare",
    "upgrade",
]

#: The PostgreSQL advisory lock key every migration takes ("hyperswe" in ASCII).
ADVISORY_LOCK_KEY = 0x6879_7065_7273_7765
#: How long a migration waits for another one's SQLite write lock before giving up.
LOCK_WAIT_SECONDS = 600.0


class Prepared(StrEnum):
    """What :func:`prepare` found, and did."""

    CURRENT = "current"  # at head already: nothing to do
    CREATED = "created"  # empty: the schema was created
    UPGRADED = "upgraded"  # behind: brought to head


class SchemaBehind(Exception):
    """The database's schema is at ``current`` (``None``: an empty database), behind
    ``head``, and this caller may not migrate it."""

    def __init__(self, current: str | None, head: str) -> None:
        super().__init__(
            f"the database schema is at revision {current or 'none (empty database)'}, behind {head}; "
            "run 'hypersweep db upgrade' first"
        )
        self.current = current
        self.head = head


def alembic_config(url: str, connection: Connection | None = None) -> Config:
    """Alembic's configuration for ``url``; with ``connection``, migrations run in that
    connection's transaction (``migrations/env.py`` uses it instead of a new engine)."""
    config = Config()
    config.set_main_option("script_location", str(Path(hypersweep.migrations.__file__).parent))
    # Alembic reads this through ConfigParser, which treats '%' as interpolation.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _engine(url: str) -> Engine:
    if not is_sqlite(url):
        return create_engine(url)
    engine = create_engine(url, connect_args={"timeout": LOCK_WAIT_SECONDS})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The sqlite3 module would start its own deferred transactions and commit around
        # some statements; ``locked`` issues its own BEGIN IMMEDIATE instead.
        dbapi_connection.isolation_level = None

    return engine


@contextmanager
def locked(url: str) -> Iterator[Connection]:
    """A connection to ``url`` in a transaction that holds the migration lock (see the
    module doc); it commits on the way out, and the lock goes with the transaction."""
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            yield conn
    finally:
        engine.dispose()


def _revision_in(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database to ``revision``, under the migration lock."""
    with locked(url) as conn:
        command.upgrade(alembic_config(url, conn), revision)


def prepare(url: str, *, upgrade_older: bool) -> Prepared:
    """Make the database ready for a server, under the migration lock: create the schema
    on an empty database; bring one at an older revision to head when ``upgrade_older``,
    else raise :class:`SchemaBehind`; leave one at head alone."""
    head = head_revision()
    with locked(url) as conn:
        current = _revision_in(conn)
        if current == head:
            return Prepared.CURRENT
        if current is not None and not upgrade_older:
            raise SchemaBehind(current, head)
        command.upgrade(alembic_config(url, conn), "head")
    return Prepared.CREATED if current is None else Prepared.UPGRADED


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return _revision_in(connection)
    finally:
        engine.dispose()


def is_current(url: str) -> bool:
    return current_revision(url) == head_revision()
