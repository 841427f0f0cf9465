"""Health, Prometheus metrics, and answers while the database is away."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.service.api.test_sweeps import claim, finish, submit


def test_healthz_reports_the_database(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}


@pytest.fixture
def unreachable(make_client: Any, backend: str, tmp_path: Any) -> TestClient:
    """An app whose database cannot be reached: a SQLite file in a missing folder, or a
    PostgreSQL port nothing listens on."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/missing-dir/x.db"
    else:
        url = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=1"
    client: TestClient = make_client(database_url=url)
    return client


def test_healthz_is_503_when_the_database_is_unreachable(unreachable: TestClient) -> None:
    response = unreachable.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


def test_metrics_counts_trials_and_sweeps(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 3, "epochs": 1}])
    trials = claim(client, sweep["id"], count=2)
    finish(client, trials[0], 0.5)
    text = client.get("/metrics").text
    assert 'hypersweep_trials{status="completed"} 1.0' in text
    assert 'hypersweep_trials{status="running"} 1.0' in text
    assert 'hypersweep_sweeps{status="running"} 1.0' in text
    assert "hypersweep_trials_claimed_total 2.0" in text
    assert 'hypersweep_trials_finished_total{status="completed"} 1.0' in text


def test_api_answers_503_while_the_database_is_unreachable(unreachable: TestClient) -> None:
    response = unreachable.get("/api/v1/sweeps")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert "unavailable" in response.json()["detail"]
