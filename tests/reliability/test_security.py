"""Security: the bearer tokens stay out of logs and answers, the worker token can run
trials and do nothing else, and text full of quotes, semicolons, placeholders
and unicode goes through the database unchanged (every query is built with bound
parameters)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from hypersweep.service.config import Settings
from tests.conftest import sweep_doc
from tests.e2e.conftest import Processes
from tests.reliability.conftest import Service, on_backend

API = "/api/v1"


@on_backend("sqlite")
def test_the_token_never_appears_in_logs_or_answers(processes: Processes, database_url: str, tmp_path: Path) -> None:
    token = "tok-" + secrets.token_urlsafe(24)
    worker_token = "wtok-" + secrets.token_urlsafe(24)
    service = Service(processes, database_url, token=token, log_level="debug", debug_logging=True)
    service.env["HYPERSWEEP_WORKER_TOKEN"] = worker_token
    service.start()
    answers: list[httpx.Response] = []
    good = {"Authorization": f"Bearer {token}"}
    wrong = [
        {},
        {"Authorization": f"Bearer {token}x"},
        {"Authorization": f"Bearer {token[:-1]}"},
        {"Authorization": f"Basic {token}"},
        {"Authorization": token},
    ]
    try:
        with httpx.Client(base_url=service.url, timeout=30) as http:
            for headers in wrong:
                for method, path in [("GET", f"{API}/sweeps"), ("POST", f"{API}/trials/claim"), ("GET", "/metrics")]:
                    answer = http.request(method, path, headers=headers, json={"worker_id": "w"})
                    assert answer.status_code == 401, answer.text
                    answers.append(answer)
            sweep = http.post(f"{API}/sweeps", json=sweep_doc(stages=[{"trials": 3, "epochs": 2}]), headers=good)
            assert sweep.status_code == 201
            sweep_id = sweep.json()["id"]
            answers += [
                sweep,
                http.post(f"{API}/sweeps", json=sweep_doc(name=""), headers=good),
                http.get(f"{API}/sweeps/999", headers=good),
                http.post(f"{API}/trials/999/heartbeat", json={"lease_token": "stale"}, headers=good),
                http.get("/metrics", headers=good),
                http.get(f"{API}/sweeps/{sweep_id}/trials", headers=good),
                http.post(f"{API}/sweeps", json=sweep_doc(), headers={"Authorization": f"Bearer {worker_token}"}),
            ]
            assert [a.status_code for a in answers[-6:]] == [422, 404, 404, 200, 200, 403]
        refused = service.start_agent("refused", sweep_id, token=token[:-1])
        assert service.wait_for_exit(refused) == 1
        agent = service.start_agent("agent", sweep_id, epoch_seconds=0.05, token=worker_token)
        assert service.wait_for_exit(agent) == 0, service.processes.logs()
        assert service.client.get_sweep(sweep_id).status == "completed"
    finally:
        service.client.close()

    logs = {path.name: path.read_text(errors="replace") for _, _, path in processes.started}
    assert "401" in logs["refused.log"]
    assert "DEBUG sqlalchemy.engine" in logs["server-1.log"]
    for secret in (token[4:], worker_token[5:]):
        for name, text in logs.items():
            assert secret not in text, f"a token is in {name}"
            assert secret[:16] not in text, f"part of a token is in {name}"
        for answer in answers:
            assert secret not in answer.text
            assert all(secret not in value for value in answer.headers.values())


USER, WORKER = "user-token", "worker-token"


@pytest.fixture
def two_tokens(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(token=USER, worker_token=WORKER)


def test_the_worker_token_runs_trials_and_nothing_else(two_tokens: TestClient) -> None:
    client = two_tokens
    user = {"Authorization": f"Bearer {USER}"}
    worker = {"Authorization": f"Bearer {WORKER}"}
    sweep = client.post(f"{API}/sweeps", json=sweep_doc(), headers=user).json()

    refused = client.post(f"{API}/sweeps", json=sweep_doc(name="by-a-worker"), headers=worker)
    assert refused.status_code == 403
    assert "worker token" in refused.json()["detail"]
    assert client.post(f"{API}/sweeps/{sweep['id']}/cancel", headers=worker).status_code == 403
    assert client.get(f"{API}/sweeps/{sweep['id']}", headers=worker).json()["status"] == "running"

    claimed = client.post(f"{API}/trials/claim", json={"worker_id": "w", "count": 2}, headers=worker)
    assert claimed.status_code == 200
    first, second = claimed.json()["trials"]
    calls: list[tuple[str, dict[str, Any]]] = [
        ("heartbeat", {}),
        ("report", {"step": 1, "metrics": {"val_accuracy": 0.5}}),
        ("finish", {"status": "completed", "metrics": {"val_accuracy": 0.5}}),
    ]
    for verb, body in calls:
        answer = client.post(
            f"{API}/trials/{first['id']}/{verb}", json={"lease_token": first["lease_token"], **body}, headers=worker
        )
        assert answer.status_code == 200, (verb, answer.text)
    released = client.post(
        f"{API}/trials/{second['id']}/release", json={"lease_token": second["lease_token"]}, headers=worker
    )
    assert released.status_code == 200
    assert client.get("/metrics", headers=worker).status_code == 200
    assert client.get(f"{API}/trials/{first['id']}", headers=user).json()["status"] == "completed"

    # Everything else is the user's: reading results included, and any route not marked
    # open to workers (so an endpoint added later is closed to them until it is).
    closed = [
        ("GET", f"{API}/sweeps"),
        ("GET", f"{API}/sweeps/{sweep['id']}/trials"),
        ("GET", f"{API}/trials/{first['id']}"),
        ("GET", f"{API}/sweeps/{sweep['id']}/points"),
        ("GET", f"{API}/sweeps/{sweep['id']}/curves?trials={first['id']}"),
        ("GET", f"{API}/no-such-route"),
    ]
    for method, path in closed:
        answer = client.request(method, path, headers=worker)
        assert answer.status_code in (403, 404), (path, answer.status_code)
        if "no-such" not in path:
            assert answer.status_code == 403 and "worker token" in answer.json()["detail"], path
            assert client.request(method, path, headers=user).status_code == 200, path
    # The routes open to it, as /openapi.json marks them.
    paths = client.get("/openapi.json").json()["paths"]
    open_routes = {
        (method.upper(), path)
        for path, operations in paths.items()
        for method, operation in operations.items()
        if operation.get("x-worker-token")
    }
    assert open_routes == {
        ("POST", f"{API}/trials/claim"),
        ("POST", f"{API}/trials/{{trial_id}}/heartbeat"),
        ("POST", f"{API}/trials/{{trial_id}}/report"),
        ("POST", f"{API}/trials/{{trial_id}}/reports"),
        ("POST", f"{API}/trials/{{trial_id}}/finish"),
        ("POST", f"{API}/trials/{{trial_id}}/release"),
        ("GET", f"{API}/sweeps/{{sweep_id}}"),
        ("GET", "/metrics"),
    }

    assert client.post(f"{API}/sweeps/{sweep['id']}/cancel", headers=user).json()["status"] == "cancelled"
    for wrong in (f"{WORKER}x", USER.upper(), ""):
        answer = client.post(
            f"{API}/trials/claim", json={"worker_id": "w"}, headers={"Authorization": f"Bearer {wrong}"}
        )
        assert answer.status_code == 401


def test_a_worker_token_needs_a_distinct_user_token() -> None:
    with pytest.raises(ValidationError, match="needs HYPERSWEEP_TOKEN"):
        Settings(worker_token="w")
    with pytest.raises(ValidationError, match="must differ"):
        Settings(token="same", worker_token="same")
    assert Settings(token="u", worker_token="w").worker_token is not None


HOSTILE = [
    "Robert'); DROP TABLE trials;--",
    'say "hi"; DELETE FROM sweeps WHERE 1=1 --',
    "%s %(name)s %% {0} $1 ? :name",
    "back\\slash \\x00 \\u0000 \\' \\\"",
    "ünïcödé ✓ 日本語 🎲 \u202e rtl",
    "line\nbreak\ttab\r",
    "` OR 1=1; /* comment */ --",
]


def test_hostile_text_goes_through_the_database_unchanged(client: TestClient) -> None:
    datasets = [f"npz:{text.replace('..', '')}.npz" for text in HOSTILE if "\n" not in text]
    metric = HOSTILE[0]
    doc = sweep_doc(
        name=" | ".join(HOSTILE)[:200],
        objective={"metric": metric, "mode": "max"},
        space={
            "dataset": {"type": "categorical", "values": datasets},
            "lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
        },
        stages=[{"trials": 6, "epochs": 1}],
    )
    created = client.post(f"{API}/sweeps", json=doc)
    assert created.status_code == 201, created.text
    sweep = created.json()
    assert sweep["name"] == doc["name"]
    assert sweep["spec"]["space"]["dataset"]["values"] == datasets
    assert sweep["objective"]["metric"] == metric

    trials: list[dict[str, Any]] = []
    for index, worker in enumerate(HOSTILE[:6]):
        answer = client.post(f"{API}/trials/claim", json={"worker_id": worker, "sweep_id": sweep["id"]})
        assert answer.status_code == 200, answer.text
        [trial] = answer.json()["trials"]
        assert trial["params"]["dataset"] in datasets
        assert trial["trainer"]["dataset"] == trial["params"]["dataset"]
        token = trial["lease_token"]
        metrics = {text: text for text in HOSTILE} | {metric: index / 10}
        report = {"lease_token": token, "step": 1, "metrics": metrics}
        assert client.post(f"{API}/trials/{trial['id']}/report", json=report).status_code == 200
        finish = {"lease_token": token, "status": "failed" if index == 5 else "completed", "metrics": metrics}
        finish["error"] = " ".join(HOSTILE)
        assert client.post(f"{API}/trials/{trial['id']}/finish", json=finish).status_code == 200
        trials.append(trial)

    for index, trial in enumerate(trials):
        stored = client.get(f"{API}/trials/{trial['id']}").json()
        assert stored["worker_id"] == HOSTILE[index]
        assert stored["params"] == trial["params"]
        assert stored["metrics"] == {text: text for text in HOSTILE} | {metric: index / 10}
        assert stored["curve"][0]["metrics"] == stored["metrics"]
        assert stored["error"] == " ".join(HOSTILE)
    ranked = client.get(f"{API}/sweeps/{sweep['id']}/trials", params={"sort": "-metric"}).json()
    assert [t["worker_id"] for t in ranked] == HOSTILE[:6][::-1]
    done = client.get(f"{API}/sweeps/{sweep['id']}").json()
    assert done["status"] == "completed"
    assert done["best"]["worker_id"] == HOSTILE[4]
    # Nothing was dropped or deleted on the way.
    assert client.get(f"{API}/sweeps").headers["X-Total-Count"] == "1"
    assert len(client.get(f"{API}/sweeps/{sweep['id']}/trials").json()) == 6
