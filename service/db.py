"""Engines and transactions for SQLite and PostgreSQL.

On SQLite every transaction that writes starts with ``BEGIN IMMEDIATE``: it takes the write
lock up front, so two writers queue on the busy timeout instead of one failing half-way
with "database is locked". Writers of one process take turns on a lock of their own
first (see ``Database._writing``). WAL mode lets readers go on while a writer writes.
On PostgreSQL, connections are checked before use so a restarted server is ridden out.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Database", "is_sqlite", "lasting_problem"]

SQLITE_BUSY_TIMEOUT_S = 30.0


def is_sqlite(url: str) -> bool:
    """Whether the SQLAlchemy URL ``url`` names a SQLite database (any driver)."""
    return make_url(url).get_backend_name() == "sqlite"


#: Errors that last until someone changes the database or its host, each with what a
#: person should know: by PostgreSQL's SQLSTATE, and by the words of SQLite's message.
_LASTING_SQLSTATES = {
    "25006": "the database is read-only (a standby, or default_transaction_read_only is on): "
    "the server can read but not record anything",
    "53100": "the database's disk is full: the server cannot record anything until space is freed",
    "42501": "the database user lacks a privilege the server needs",
}
_LASTING_SQLITE = {
    "readonly database": "the SQLite database is read-only: the server can read but not record anything; "
    "make the database file and its directory writable by the server",
    "database or disk is full": "the SQLite database's disk is full: the server cannot record anything "
    "until space is freed",
}


def lasting_problem(exc: DBAPIError) -> str | None:
    """What is wrong, in a sentence, when ``exc`` will happen again on every try until
    someone acts (a read-only database, a full disk, a missing privilege); ``None`` for
    an error that may pass (a lost connection, a restarting server, a busy file)."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate in _LASTING_SQLSTATES:
        return _LASTING_SQLSTATES[sqlstate]
    message = str(exc.orig)
    for words, problem in _LASTING_SQLITE.items():
        if words in message:
            return problem
    return None


def _configure_sqlite_connections(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module, which would otherwise
        # issue its own deferred BEGIN before the first write; Database issues its own.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            # A read-only file cannot change its journal: it is still read, and every write
            # fails with what is wrong (see ``lasting_problem``) instead of every request.
            if "readonly" not in str(exc):
                raise
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.close()


def _sqlite_sessions(engine: Engine, begin: str) -> sessionmaker[Session]:
    """Sessions whose transactions open with ``begin`` (``BEGIN IMMEDIATE``, say). A session
    event, not an engine one: an engine with any connection event listener runs SQLAlchemy's
    event dispatch around every statement, which costs more than a short statement does."""
    sessions = sessionmaker(engine, expire_on_commit=False)

    @event.listens_for(sessions, "after_begin")
    def _on_begin(_session: Session, _transaction: Any, connection: Connection) -> None:
        connection.exec_driver_sql(begin)

    return sessions


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
            _configure_sqlite_connections(self.engine)
            self._read = _sqlite_sessions(self.engine, "BEGIN DEFERRED")
            self._write = _sqlite_sessions(self.engine, "BEGIN IMMEDIATE")
        else:
            self.engine = create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)
            self._read = sessionmaker(self.engine, expire_on_commit=False)
            self._write = sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = threading.RLock()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self._writing(), self._write() as session, session.begin():
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self._writing(), self.engine.begin() as conn:
            if self.sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn

    def _writing(self) -> AbstractContextManager[object]:
        # SQLite lets one writer in at a time. A thread that finds the file locked sleeps in
        # SQLite's busy handler and polls (after 1, 2, 5, 10 ms ...), so under many requests
        # writers mostly wait on those sleeps; a lock in this process hands the turn over
        # the moment it is free. The busy timeout still covers writers in other processes.
        return self._write_lock if self.sqlite else nullcontext()

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
