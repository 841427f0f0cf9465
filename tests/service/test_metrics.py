"""The Prometheus counters count what happened to trials, not the requests that said so."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.service.api.test_sweeps import API, claim, submit


def finished_counts(client: TestClient) -> dict[str, float]:
    text = client.get("/metrics").text
    return {
        status: float(value)
        for status, value in re.findall(r'^hypersweep_trials_finished_total\{status="(\w+)"\} (\S+)$', text, re.M)
    }


def test_the_finished_counter_counts_trials_that_ended_not_finish_requests(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 4, "epochs": 1}])
    alone, carried, cancelled, _ = claim(client, sweep["id"], count=4)

    def finish(trial: dict[str, object], status: str) -> None:
        body = {"lease_token": trial["lease_token"], "status": status, "metrics": {"val_accuracy": 0.5}}
        assert client.post(f"{API}/trials/{trial['id']}/finish", json=body).status_code == 200

    finish(alone, "completed")
    finish(alone, "completed")  # sent again: harmless, and not another trial
    result = {"trial_id": carried["id"], "lease_token": carried["lease_token"], "status": "failed", "metrics": {}}
    for _ in range(2):  # a claim resent after its answer was lost
        answer = client.post(
            f"{API}/trials/claim", json={"worker_id": "w", "sweep_id": sweep["id"], "finished": [result]}
        )
        assert answer.json()["finished"][0]["code"] == 200
    assert finished_counts(client) == {"completed": 1.0, "failed": 1.0}

    # A trial the cancel ended is not ended again by its worker's finish.
    client.post(f"{API}/sweeps/{sweep['id']}/cancel")
    finish(cancelled, "completed")
    finish(cancelled, "completed")
    assert finished_counts(client) == {"completed": 1.0, "failed": 1.0}
