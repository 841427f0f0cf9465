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


def slots_wanted(client: TestClient) -> dict[str, float]:
    """``hypersweep_worker_slots_wanted`` by program, parsed from /metrics by a Prometheus
    text parser, as an autoscaler reads it."""
    from prometheus_client.parser import text_string_to_metric_families

    [family] = [
        f
        for f in text_string_to_metric_families(client.get("/metrics").text)
        if f.name == "hypersweep_worker_slots_wanted"
    ]
    return {sample.labels["program"]: sample.value for sample in family.samples}


def test_metrics_tell_an_autoscaler_how_many_trial_slots_the_running_sweeps_can_use(client: TestClient) -> None:
    # Nothing to run: the built-in trainer's sample is there all the same, at 0.
    assert slots_wanted(client) == {"": 0}
    # Two stages of 3 and 2 trials, at most 2 at once: 2 slots, though nothing is created yet.
    staged = submit(client, stages=[{"trials": 3, "epochs": 1}, {"trials": 2, "epochs": 1, "top_k": 1}], parallelism=2)
    wide = submit(client, name="wide", stages=[{"trials": 3, "epochs": 1}], parallelism=8)
    assert slots_wanted(client) == {"": 2 + 3}
    # Two of the wide sweep's trials leased, one finished: one running, one still to create.
    first, _ = claim(client, wide["id"], count=2)
    finish(client, first, 0.5)
    assert slots_wanted(client) == {"": 2 + 2}
    # The last stage of the staged sweep counts before it starts: its first stage done,
    # the second (2 trials) is what is left.
    for trial in claim(client, staged["id"], count=2):
        finish(client, trial, 0.5)
    [last] = claim(client, staged["id"], count=2)
    assert slots_wanted(client) == {"": 2 + 2}
    finish(client, last, 0.5)
    assert slots_wanted(client) == {"": 2 + 2}
    # A program's sweep counts under its own name; a cancelled sweep no longer counts.
    submit(client, name="mine", program="toy", trainer={"anything": 1}, stages=[{"trials": 4, "epochs": 1}])
    assert slots_wanted(client) == {"": 4, "toy": 4}
    assert client.post(f"/api/v1/sweeps/{staged['id']}/cancel").status_code == 200
    assert slots_wanted(client) == {"": 2, "toy": 4}


def test_api_answers_503_while_the_database_is_unreachable(unreachable: TestClient) -> None:
    response = unreachable.get("/api/v1/sweeps")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert "unavailable" in response.json()["detail"]
