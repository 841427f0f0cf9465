"""Engines and transactions for SQLite and PostgreSQL.

On SQLite every transaction that writes starts with ``BEGIN IMMEDIATE``: it takes the write
lock up front, so two writers queue on the busy timeout instead of one failing half-way
with "database is locked". WAL mode lets readers go on while a writer holds that lock.
On PostgreSQL, connections are checked before use so a restarted server is ridden out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.engine.base import OptionEngine
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Database", "is_sqlite"]

SQLITE_BUSY_TIMEOUT_S = 30.0


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module, which would otherwise
        # issue its own deferred BEGIN before the first write.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """One engine and two kinds of session: ``read()`` for queries and ``write()`` for
    transactions that change rows. Each commits on success and rolls back on error.
    ``transaction()`` is a write transaction on a bare Core connection, for the hot path,
    and ``session_in(conn)`` an ORM session inside one, for the rare cases that need it."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.sqlite = is_sqlite(url)
        if self.sqlite:
            self.engine = create_engine(
                url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
            )
            _install_sqlite_hooks(self.engine)
            writer: Engine | OptionEngine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        else:
            self.engine = create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)
            writer = self.engine
        self._writer = writer
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(writer, expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self._write() as session, session.begin():
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self._writer.begin() as conn:
            yield conn

    @staticmethod
    @contextmanager
    def session_in(conn: Connection) -> Iterator[Session]:
        """An ORM session working in ``conn``'s transaction: it flushes what it changed on
        the way out, and commits nothing (the connection's owner does)."""
        with Session(bind=conn, expire_on_commit=False, join_transaction_mode="rollback_only") as session:
            yield session
            session.flush()

    def dispose(self) -> None:
        self.engine.dispose()
