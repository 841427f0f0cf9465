"""Schema migrations from code: bring a database to head, or tell how far behind it is."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

import hypersweep.migrations

__all__ = ["alembic_config", "current_revision", "head_revision", "is_current", "upgrade"]


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(hypersweep.migrations.__file__).parent))
    # Alembic reads this through ConfigParser, which treats '%' as interpolation.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def is_current(url: str) -> bool:
    return current_revision(url) == head_revision()
