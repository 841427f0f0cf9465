"""Migrations: up from empty on every backend, matching the models, the migration lock, and
the CLI around them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

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


def test_serve_refuses_a_postgres_database_at_an_older_revision(empty_database_url: str, backend: str) -> None:
    if backend != "postgresql":
        return
    migrate.upgrade(empty_database_url, "0002")
    result = run_cli("serve", "--port", "1", url=empty_database_url)
    assert result.returncode == 1
    assert "at revision 0002" in result.stderr
    assert "hypersweep db upgrade" in result.stderr
    assert "Traceback" not in result.stderr
    assert migrate.current_revision(empty_database_url) == "0002"


def test_prepare_upgrades_an_older_schema_only_when_allowed(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url, "0002")
    with pytest.raises(migrate.SchemaBehind, match="run 'hypersweep db upgrade' first"):
        migrate.prepare(empty_database_url, upgrade_older=False)
    assert migrate.current_revision(empty_database_url) == "0002"
    assert migrate.prepare(empty_database_url, upgrade_older=True) is migrate.Prepared.UPGRADED
    assert migrate.prepare(empty_database_url, upgrade_older=False) is migrate.Prepared.CURRENT


def test_concurrent_prepares_of_an_empty_database_create_the_schema_once(empty_database_url: str) -> None:
    callers = 4
    start = threading.Barrier(callers)

    def prepare() -> migrate.Prepared:
        start.wait()
        return migrate.prepare(empty_database_url, upgrade_older=False)

    with ThreadPoolExecutor(callers) as pool:
        results = sorted(pool.map(lambda _: prepare(), range(callers)))
    assert results == sorted([migrate.Prepared.CREATED] + [migrate.Prepared.CURRENT] * (callers - 1))
    assert migrate.is_current(empty_database_url)


def test_a_postgres_migration_waits_for_the_advisory_lock(empty_database_url: str, backend: str) -> None:
    if backend != "postgresql":
        return
    holder = create_engine(empty_database_url)
    try:
        with holder.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": migrate.ADVISORY_LOCK_KEY})
            conn.commit()
            with ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(migrate.prepare, empty_database_url, upgrade_older=False)

                def blocked_on_the_lock() -> bool:
                    row = conn.execute(
                        text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                    ).scalar_one()
                    conn.commit()
                    return bool(row)

                deadline = time.monotonic() + 60
                while not blocked_on_the_lock():
                    assert time.monotonic() < deadline, "the migration never asked for the lock"
                    time.sleep(0.05)
                # Held off by the lock: nothing created yet.
                assert not waiting.done()
                assert migrate.current_revision(empty_database_url) is None
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": migrate.ADVISORY_LOCK_KEY})
                conn.commit()
                assert waiting.result(timeout=60) is migrate.Prepared.CREATED
    finally:
        holder.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(url: str, cwd: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = {**os.environ, "HYPERSWEEP_DATABASE_URL": url}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*HYPERSWEEP, "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, port


def _wait_healthy(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the server did not come up: {log.read_text()}")


def test_two_servers_starting_on_one_empty_database_migrate_it_once(empty_database_url: str, tmp_path: Path) -> None:
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    servers = [_serve(empty_database_url, tmp_path, log) for log in logs]
    try:
        for (proc, port), log in zip(servers, logs, strict=True):
            _wait_healthy(proc, port, log)
            assert httpx.get(f"http://127.0.0.1:{port}/api/v1/sweeps").json() == []
        said = [log.read_text() for log in logs]
        assert sum("database schema created" in text for text in said) == 1, said
        assert not any("Traceback" in text for text in said), said
        assert migrate.is_current(empty_database_url)
    finally:
        for proc, _ in servers:
            proc.terminate()
        for proc, _ in servers:
            proc.wait(timeout=30)
