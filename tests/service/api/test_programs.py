"""Sweeps that run a user's own program: what they accept, who gets their trials, the
settings a trial carries, and a program that never reports its objective."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import sweep_doc


def program_doc(**overrides: Any) -> dict[str, Any]:
    doc = sweep_doc(
        name="own-code",
        program="my-cnn",
        objective={"metric": "top1", "mode": "max"},
        space={
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "scale": "log"},
            "channels": {"type": "int", "low": 8, "high": 64, "scale": "log"},
            "arch": {"type": "categorical", "values": ["resnet", "vgg"]},
        },
        stages=[{"trials": 4, "epochs": 3}],
        trainer={"batch_size": 100, "augment": {"flip": True, "crop": [2, 2]}, "divergence_metric": "loss"},
    )
    doc.update(overrides)
    return doc


def claim(client: TestClient, **body: Any) -> list[dict[str, Any]]:
    response = client.post("/api/v1/trials/claim", json={"worker_id": "w", **body})
    assert response.status_code in (200, 204), response.text
    return [] if response.status_code == 204 else list(response.json()["trials"])


def test_a_program_sweep_takes_any_names_settings_and_objective(client: TestClient) -> None:
    response = client.post("/api/v1/sweeps", json=program_doc())
    assert response.status_code == 201, response.text
    sweep = response.json()
    assert sweep["program"] == "my-cnn"
    # The built-in trainer's sweeps keep their strict checks: the same names are refused there.
    builtin = client.post("/api/v1/sweeps", json=program_doc(program=None))
    assert builtin.status_code == 422
    paths = {error["path"] for error in builtin.json()["detail"]}
    assert {"space.learning_rate", "trainer.augment"} <= paths


def test_a_program_trial_carries_its_settings_without_the_builtin_defaults(client: TestClient) -> None:
    sweep = client.post("/api/v1/sweeps", json=program_doc(trainer={"batch_size": 100, "channels": 4})).json()
    [trial] = claim(client, program="my-cnn", sweep_id=sweep["id"])
    settings = trial["trainer"]
    assert settings == {"batch_size": 100, "epochs": 3, **trial["params"]}
    assert settings["channels"] == trial["params"]["channels"]  # a param wins over a setting
    assert "hidden" not in settings and "dataset" not in settings


def test_trials_go_only_to_workers_of_their_program(client: TestClient) -> None:
    ours = client.post("/api/v1/sweeps", json=program_doc()).json()
    builtin = client.post("/api/v1/sweeps", json=sweep_doc()).json()
    other = client.post("/api/v1/sweeps", json=program_doc(program="another")).json()

    assert {t["sweep_id"] for t in claim(client, count=8)} == {builtin["id"]}
    assert {t["sweep_id"] for t in claim(client, count=8, program="my-cnn")} == {ours["id"]}
    assert {t["sweep_id"] for t in claim(client, count=8, program="another")} == {other["id"]}
    assert claim(client, program="nobody-runs-this") == []

    # Naming a sweep of another program is refused with a sentence, not served.
    refused = client.post("/api/v1/trials/claim", json={"worker_id": "w", "sweep_id": ours["id"]})
    assert refused.status_code == 409
    assert "runs program 'my-cnn'; this worker runs the built-in trainer" in refused.json()["detail"]
    refused = client.post(
        "/api/v1/trials/claim", json={"worker_id": "w", "sweep_id": builtin["id"], "program": "my-cnn"}
    )
    assert refused.status_code == 409


def test_a_program_that_never_reports_its_objective_fails_with_a_sentence(client: TestClient) -> None:
    sweep = client.post("/api/v1/sweeps", json=program_doc()).json()
    [first, second] = claim(client, program="my-cnn", sweep_id=sweep["id"], count=2)
    for trial, metrics in ((first, {"loss": 0.5}), (second, {"loss": 0.4, "top1": 0.9})):
        body = {"lease_token": trial["lease_token"], "status": "completed", "metrics": metrics}
        assert client.post(f"/api/v1/trials/{trial['id']}/finish", json=body).status_code == 200
    failed = client.get(f"/api/v1/trials/{first['id']}").json()
    assert failed["status"] == "failed"
    assert failed["error"] == "the program ended without reporting 'top1', the sweep's objective (it reported: loss)"
    done = client.get(f"/api/v1/trials/{second['id']}").json()
    assert (done["status"], done["value"]) == ("completed", 0.9)


def test_program_settings_are_bounded_and_the_divergence_settings_checked(client: TestClient) -> None:
    big = {"blob": "x" * (64 * 1024)}
    response = client.post("/api/v1/sweeps", json=program_doc(trainer=big))
    assert response.status_code == 422
    assert [e["path"] for e in response.json()["detail"]] == ["trainer"]
    bad = program_doc(trainer={"divergence_factor": 0.5, "divergence_metric": "", "epochs": 3})
    paths = {e["path"] for e in client.post("/api/v1/sweeps", json=bad).json()["detail"]}
    assert paths == {"trainer.divergence_factor", "trainer.divergence_metric", "trainer.epochs"}
    for name in ("Bad Name", "-leading", "x" * 101):
        response = client.post("/api/v1/sweeps", json=program_doc(program=name))
        assert response.status_code == 422, name
        assert "program" in json.dumps(response.json())
