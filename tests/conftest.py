"""Shared fixtures: a fresh, migrated database on every backend, an app and a store on it.

Backends come from ``HYPERSWEEP_TEST_BACKENDS`` (default ``sqlite,postgresql``); the
PostgreSQL server is ``HYPERSWEEP_TEST_POSTGRES_URL`` (default the local ``test``
database). Each test gets its own database, copied from one migrated template.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hypersweep.service import migrate
from hypersweep.service.app import create_app
from hypersweep.service.config import Settings
from hypersweep.service.db import Database
from hypersweep.service.store import Store

BACKENDS = [b.strip() for b in os.environ.get("HYPERSWEEP_TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()]
POSTGRES_ADMIN_URL = os.environ.get("HYPERSWEEP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_url(name: str) -> str:
    return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def _pg_admin(sql: str) -> None:
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    templates: dict[str, str] = {}
    if "sqlite" in BACKENDS:
        path = tmp_path_factory.mktemp("template") / "template.db"
        migrate.upgrade(f"sqlite:///{path}")
        templates["sqlite"] = str(path)
    if "postgresql" in BACKENDS:
        name = f"hs_template_{uuid.uuid4().hex[:8]}"
        _pg_admin(f"CREATE DATABASE {name}")
        migrate.upgrade(_pg_url(name))
        templates["postgresql"] = name
    yield templates
    if "postgresql" in templates:
        _pg_admin(f"DROP DATABASE IF EXISTS {templates['postgresql']} WITH (FORCE)")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, _templates: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """A fresh database at the head migration, on this test's backend."""
    if backend == "sqlite":
        path = tmp_path / "hypersweep.db"
        shutil.copyfile(_templates["sqlite"], path)
        yield f"sqlite:///{path}"
        return
    name = f"hs_test_{uuid.uuid4().hex[:12]}"
    _pg_admin(f"CREATE DATABASE {name} TEMPLATE {_templates['postgresql']}")
    yield _pg_url(name)
    _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all, on this test's backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"hs_empty_{uuid.uuid4().hex[:12]}"
    _pg_admin(f"CREATE DATABASE {name}")
    yield _pg_url(name)
    _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def settings(database_url: str) -> Settings:
    # The reaper is left to tests that want it: lease expiry is driven explicitly.
    return Settings(database_url=database_url, lease_seconds=30, token=None, reaper_interval=3600)


@pytest.fixture
def make_client(settings: Settings) -> Iterator[Callable[..., TestClient]]:
    """Build a client on an app with some settings changed (``make_client(token="s")``)."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        client = TestClient(create_app(Settings.model_validate({**settings.model_dump(), **overrides})))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    db = Database(database_url)
    yield Store(db, lease_seconds=30)
    db.dispose()


def sweep_doc(**overrides: Any) -> dict[str, Any]:
    """A small valid sweep document; keyword arguments replace top-level fields."""
    doc: dict[str, Any] = {
        "name": "test-sweep",
        "objective": {"metric": "val_accuracy", "mode": "max"},
        "space": {
            "lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
            "dropout": {"type": "float", "low": 0.0, "high": 0.5},
        },
        "search": {"kind": "random", "seed": 0},
        "stages": [{"trials": 4, "epochs": 1}],
        "trainer": {"dataset": "digits", "batch_size": 64},
        "parallelism": 8,
        "max_attempts": 3,
    }
    doc.update(overrides)
    return doc


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def start_server(database_url: str, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start a real ``hypersweep serve`` on this test's database; returns its URL.
    Keyword arguments become ``HYPERSWEEP_*`` variables (``start(token="s")``)."""
    import subprocess
    import sys
    import time

    import httpx

    procs: list[subprocess.Popen[bytes]] = []

    def start(**env_overrides: Any) -> str:
        port = free_port()
        env = {**os.environ, "HYPERSWEEP_DATABASE_URL": database_url}
        env.pop("HYPERSWEEP_TOKEN", None)
        env.update({f"HYPERSWEEP_{k.upper()}": str(v) for k, v in env_overrides.items()})
        log = (tmp_path / f"server-{port}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "hypersweep", "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / f"server-{port}.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return url
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("server did not start")

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def live_server(start_server: Callable[..., str]) -> str:
    return start_server()
