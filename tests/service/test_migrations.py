"""Migrations: up from empty on every backend, matching the models, and the CLI around them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from hypersweep.service import migrate
from hypersweep.service.models import Base

HYPERSWEEP = [sys.executable, "-m", "hypersweep"]


def test_upgrade_from_empty_reaches_head(empty_database_url: str) -> None:
    assert migrate.current_revision(empty_database_url) is None
    assert not migrate.is_current(empty_database_url)
    migrate.upgrade(empty_database_url)
    assert migrate.current_revision(empty_database_url) == migrate.head_revision()
    engine = create_engine(empty_database_url)
    try:
        assert {"sweeps", "stages", "trials", "curve_points"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_upgrade_twice_is_harmless(database_url: str) -> None:
    migrate.upgrade(database_url)
    assert migrate.is_current(database_url)


def run_cli(*args: str, url: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYPERSWEEP_DATABASE_URL": url}
    return subprocess.run([*HYPERSWEEP, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_db_upgrade_command(empty_database_url: str) -> None:
    result = run_cli("db", "upgrade", url=empty_database_url)
    assert result.returncode == 0, result.stderr
    assert f"database at revision {migrate.head_revision()}" in result.stdout
    assert migrate.is_current(empty_database_url)


def test_db_upgrade_on_an_unreachable_database_is_one_clear_line() -> None:
    result = run_cli("db", "upgrade", url="postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=1")
    assert result.returncode == 1
    assert "cannot migrate the database" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_postgres_database_that_is_behind(empty_database_url: str, backend: str) -> None:
    if backend != "postgresql":
        return
    result = run_cli("serve", "--port", "1", url=empty_database_url)
    assert result.returncode == 1
    assert "hypersweep db upgrade" in result.stderr
    assert "Traceback" not in result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_migrates_the_embedded_sqlite_database_by_itself(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    port = _free_port()
    env = {**os.environ, "HYPERSWEEP_DATABASE_URL": url}
    proc = subprocess.Popen([*HYPERSWEEP, "serve", "--port", str(port)], env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/sweeps").json() == []
        assert migrate.is_current(url)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
