"""The ``hypersweep`` command line."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from hypersweep.service.config import Settings

__all__ = ["app", "main"]

app = typer.Typer(
    name="hypersweep",
    help="Hyperparameter search for PyTorch: run the server, run workers, manage sweeps.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    # One line, however long: a log line or a test reads it whole.
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def _settings() -> Settings:
    # The server's modules are imported by the server's commands alone: a worker or a
    # client command starts without SQLAlchemy.
    from pydantic import ValidationError

    from hypersweep.service.config import Settings

    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            name = "_".join(map(str, error["loc"])).upper()
            problems.append(f"HYPERSWEEP_{name}: {message}" if name else message)
        raise _fail(f"invalid settings: {'; '.join(problems)}") from None


def _ensure_schema(settings: Settings) -> None:
    """Make the database ready, under the migration lock: an empty database gets the
    schema (either backend); one at an older revision is brought to head on SQLite, the
    embedded default, and refused on PostgreSQL, whose upgrades are 'hypersweep db upgrade'."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from hypersweep.service import migrate
    from hypersweep.service.db import is_sqlite

    try:
        prepared = migrate.prepare(settings.database_url, upgrade_older=is_sqlite(settings.database_url))
    except migrate.SchemaBehind as exc:
        raise _fail(str(exc)) from None
    except (SQLAlchemyError, CommandError) as exc:
        raise _fail(f"cannot prepare the database: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from None
    if prepared is not migrate.Prepared.CURRENT:
        err.print(f"database schema {prepared.value}: revision {migrate.head_revision()}", highlight=False)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the API server (and the dashboard) on HYPERSWEEP_DATABASE_URL.

    An empty database gets the schema on start. An older schema is brought up to date on
    SQLite; on PostgreSQL it is refused until 'hypersweep db upgrade' has run."""
    import uvicorn

    from hypersweep.service.app import create_app

    settings = _settings()
    _ensure_schema(settings)
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Bring the database at HYPERSWEEP_DATABASE_URL to the latest schema."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from hypersweep.service import migrate

    settings = _settings()
    try:
        migrate.upgrade(settings.database_url, revision)
        current = migrate.current_revision(settings.database_url)
    except (SQLAlchemyError, CommandError) as exc:
        raise _fail(f"cannot migrate the database: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from None
    typer.echo(f"database at revision {current}")


def _register_client_commands() -> None:
    from hypersweep import commands

    for command in (
        commands.submit,
        commands.status,
        commands.trials,
        commands.watch,
        commands.export,
        commands.cancel,
        commands.enqueue,
    ):
        app.command()(command)
    from hypersweep.demo import demo

    app.command()(demo)
    from hypersweep.checking import check

    app.command()(check)


_register_client_commands()


def _register_optional_commands() -> None:
    try:
        worker_cli = importlib.import_module("hypersweep.worker.cli")
    except ImportError:
        return
    app.command("worker")(worker_cli.worker_command)


_register_optional_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
