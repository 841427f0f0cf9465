"""Alembic environment. The URL comes from the caller (``service.migrate``) or, when
alembic runs on its own, from ``Settings``; SQLite runs in batch mode. A caller that
holds the migration lock hands its connection over (``config.attributes["connection"]``):
the migrations then run in that connection's transaction."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from hypersweep.service.config import Settings
from hypersweep.service.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or Settings().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=url,
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_in(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _run_in(given)
        return
    engine = create_engine(url)
    with engine.connect() as connection:
        _run_in(connection)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
