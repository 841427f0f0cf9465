"""The worker protocol: claim, heartbeat, report, finish, release, and lease expiry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, update

from hypersweep.service.models import Trial, utcnow
from tests.service.api.test_sweeps import API, claim, finish, submit


def expire_lease(database_url: str, trial_id: int) -> None:
    """Move a trial's lease into the past, as if its worker had gone silent."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(update(Trial).where(Trial.id == trial_id).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    engine.dispose()


def post(client: TestClient, trial: dict[str, Any], verb: str, **body: Any) -> Any:
    return client.post(f"{API}/trials/{trial['id']}/{verb}", json={"lease_token": trial["lease_token"], **body})


def test_claim_hands_out_distinct_trials_with_resolved_settings(client: TestClient) -> None:
    sweep = submit(client, trainer={"dataset": "digits", "batch_size": 32, "hidden": 64})
    trials = claim(client, sweep["id"], count=3, worker="w1")
    assert len(trials) == 3
    assert len({t["id"] for t in trials}) == 3
    assert len({t["lease_token"] for t in trials}) == 3
    for trial in trials:
        assert trial["status"] == "running"
        assert trial["worker_id"] == "w1"
        assert trial["attempt"] == 1
        assert trial["stage"] == 0
        settings = trial["trainer"]
        assert settings["epochs"] == 1
        assert settings["batch_size"] == 32 and settings["hidden"] == 64
        assert settings["lr"] == trial["params"]["lr"]
        assert 1e-4 <= trial["params"]["lr"] <= 1.0
    assert sorted(t["number"] for t in trials) == [0, 1, 2]


def test_claim_without_sweep_takes_from_any_running_sweep(client: TestClient) -> None:
    first = submit(client, name="a", stages=[{"trials": 1, "epochs": 1}])
    second = submit(client, name="b", stages=[{"trials": 2, "epochs": 1}])
    trials = claim(client, count=5)
    assert sorted(t["sweep_id"] for t in trials) == [first["id"], second["id"], second["id"]]
    assert claim(client) == []


def test_claim_answers_204_when_there_is_nothing_to_do(client: TestClient) -> None:
    response = client.post(f"{API}/trials/claim", json={"worker_id": "w"})
    assert response.status_code == 204
    assert response.content == b""


def test_claim_for_an_unknown_sweep_is_404(client: TestClient) -> None:
    assert client.post(f"{API}/trials/claim", json={"worker_id": "w", "sweep_id": 42}).status_code == 404


@pytest.mark.parametrize(
    "body", [{}, {"worker_id": ""}, {"worker_id": "w", "count": 0}, {"worker_id": "w", "count": 65}]
)
def test_bad_claims_are_422(client: TestClient, body: dict[str, Any]) -> None:
    assert client.post(f"{API}/trials/claim", json=body).status_code == 422


def test_parallelism_caps_running_trials(client: TestClient) -> None:
    sweep = submit(client, parallelism=2, stages=[{"trials": 5, "epochs": 1}])
    first = claim(client, sweep["id"], count=5)
    assert len(first) == 2
    assert claim(client, sweep["id"]) == []
    finish(client, first[0], 0.5)
    assert len(claim(client, sweep["id"], count=5)) == 1


def test_budget_is_exact_and_the_sweep_completes(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 3, "epochs": 1}])
    trials = claim(client, sweep["id"], count=10)
    assert len(trials) == 3
    assert claim(client, sweep["id"]) == []
    for i, trial in enumerate(trials):
        finish(client, trial, 0.1 * i)
    body = client.get(f"{API}/sweeps/{sweep['id']}").json()
    assert body["status"] == "completed"
    assert body["finished_at"] is not None
    assert body["counts"] == {"completed": 3}
    assert body["stages"][0]["status"] == "completed"


def test_next_stage_starts_only_when_the_previous_has_nothing_queued_or_running(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 2, "epochs": 1}, {"trials": 3, "epochs": 5, "top_k": 1}])
    a, b = claim(client, sweep["id"], count=2)
    finish(client, a, 0.9)
    # Stage 0 still has a running trial: stage 1 must not start.
    assert claim(client, sweep["id"]) == []
    finish(client, b, 0.3)
    later = claim(client, sweep["id"], count=10)
    assert len(later) == 3
    assert {t["stage"] for t in later} == {1}
    assert {t["trainer"]["epochs"] for t in later} == {5}
    assert sorted(t["number"] for t in later) == [2, 3, 4]
    body = client.get(f"{API}/sweeps/{sweep['id']}").json()
    assert body["current_stage"] == 1
    assert [s["status"] for s in body["stages"]] == ["completed", "running"]
    derived = body["stages"][1]["space"]
    assert derived is not None and set(derived) == {"lr", "dropout"}
    # The derived space holds every stage-1 trial.
    for trial in later:
        lr = derived["lr"]
        assert lr["low"] <= trial["params"]["lr"] <= lr["high"]


def ended(trial: dict[str, Any], value: float, **extra: Any) -> dict[str, Any]:
    """A result for a claim to carry: trial ``trial`` completed with ``val_accuracy`` ``value``."""
    body = {"trial_id": trial["id"], "lease_token": trial["lease_token"], "status": "completed"}
    return {**body, "metrics": {"val_accuracy": value}, **extra}


def test_a_claim_carrying_results_finishes_them_and_hands_out_the_freed_slots(client: TestClient) -> None:
    sweep = submit(client, parallelism=2, stages=[{"trials": 5, "epochs": 1}])
    a, b = claim(client, sweep["id"], count=2)
    points = [{"step": 1, "metrics": {"train_loss": 1.5}}]
    response = client.post(
        f"{API}/trials/claim",
        json={
            "worker_id": "w",
            "sweep_id": sweep["id"],
            "count": 2,
            "finished": [ended(a, 0.7, points=points), ended(b, 0.9, status="diverged")],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["finished"] == [
        {"trial_id": a["id"], "code": 200, "status": "completed", "detail": None},
        {"trial_id": b["id"], "code": 200, "status": "diverged", "detail": None},
    ]
    # The two finished trials freed both slots of the parallelism for this very claim.
    assert len(body["trials"]) == 2
    assert {t["number"] for t in body["trials"]} == {2, 3}
    detail = client.get(f"{API}/trials/{a['id']}").json()
    assert (detail["status"], detail["metrics"]) == ("completed", {"train_loss": 1.5, "val_accuracy": 0.7})
    assert [p["step"] for p in detail["curve"]] == [1]
    assert client.get(f"{API}/trials/{b['id']}").json()["status"] == "diverged"
    swept = client.get(f"{API}/sweeps/{sweep['id']}").json()
    assert swept["best"]["id"] == a["id"]


def test_results_a_claim_cannot_take_get_their_reasons_and_the_rest_are_finished(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 3, "epochs": 1}])
    a, b = claim(client, sweep["id"], count=2)
    before = client.get(f"{API}/trials/{b['id']}").json()
    stale = {**ended(b, 0.2), "lease_token": "not-the-token"}
    missing = {**ended(a, 0.5), "trial_id": 424242}
    finished = [stale, missing, ended(a, 0.6), ended(a, 0.99)]
    response = client.post(
        f"{API}/trials/claim", json={"worker_id": "w", "sweep_id": sweep["id"], "finished": finished}
    )
    assert response.status_code == 200, response.text
    outcomes = response.json()["finished"]
    assert [(o["trial_id"], o["code"]) for o in outcomes] == [
        (b["id"], 409),
        (424242, 404),
        (a["id"], 200),
        (a["id"], 200),
    ]
    assert "lease token" in outcomes[0]["detail"] and "does not exist" in outcomes[1]["detail"]
    # The refused result changed nothing; finishing again (the last one) is harmless.
    assert client.get(f"{API}/trials/{b['id']}").json() == before
    assert client.get(f"{API}/trials/{a['id']}").json()["metrics"] == {"val_accuracy": 0.6}
    assert len(response.json()["trials"]) == 1


def test_a_claim_carrying_the_last_results_completes_the_sweep_and_answers_200(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 2, "epochs": 1}])
    trials = claim(client, sweep["id"], count=2)
    body = {"worker_id": "w", "sweep_id": sweep["id"], "finished": [ended(t, 0.5) for t in trials]}
    response = client.post(f"{API}/trials/claim", json=body)
    # Not 204: the answer says how the carried results went, and there is no trial to give.
    assert response.status_code == 200
    assert response.json()["trials"] == []
    assert [o["code"] for o in response.json()["finished"]] == [200, 200]
    assert client.get(f"{API}/sweeps/{sweep['id']}").json()["status"] == "completed"


@pytest.mark.parametrize(
    ("result", "path"),
    [
        ({"status": "done"}, "status"),
        ({"lease_token": ""}, "lease_token"),
        ({"points": [{"step": "one", "metrics": {}}]}, "points.0.step"),
        ({"metrics": {"val_accuracy": 2**64}}, "metrics.val_accuracy"),
        ({"metrics": {"epochs_run": -(2**70)}}, "metrics.epochs_run"),
        ({"error": "a NUL \x00 here"}, "error"),
    ],
)
def test_a_bad_result_in_a_claim_fails_only_itself(client: TestClient, result: dict[str, Any], path: str) -> None:
    sweep = submit(client, stages=[{"trials": 3, "epochs": 1}])
    a, b = claim(client, sweep["id"], count=2)
    finished = [ended(a, 0.5), {**ended(b, 0.5), **result}]
    response = client.post(
        f"{API}/trials/claim", json={"worker_id": "w", "sweep_id": sweep["id"], "finished": finished}
    )
    assert response.status_code == 200, response.text
    good, bad = response.json()["finished"]
    assert (good["trial_id"], good["code"], good["status"]) == (a["id"], 200, "completed")
    assert (bad["trial_id"], bad["code"], bad["status"]) == (b["id"], 422, None)
    assert path in bad["detail"]
    # The bad result changed nothing; the good one freed a slot that the claim filled.
    assert client.get(f"{API}/trials/{b['id']}").json()["status"] == "running"
    assert client.get(f"{API}/trials/{a['id']}").json()["metrics"] == {"val_accuracy": 0.5}
    assert len(response.json()["trials"]) == 1


def test_a_result_naming_no_valid_trial_is_refused_alone_without_a_trial_id(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 3, "epochs": 1}])
    [a] = claim(client, sweep["id"])
    finished = [{**ended(a, 0.5), "trial_id": -1}, {**ended(a, 0.5), "trial_id": 2**80}, ended(a, 0.5)]
    response = client.post(
        f"{API}/trials/claim", json={"worker_id": "w", "sweep_id": sweep["id"], "finished": finished}
    )
    assert response.status_code == 200, response.text
    outcomes = response.json()["finished"]
    assert [(o["trial_id"], o["code"]) for o in outcomes] == [(None, 422), (None, 422), (a["id"], 200)]
    assert "trial_id" in outcomes[0]["detail"] and "64-bit" in outcomes[1]["detail"]


def test_a_claim_carries_at_most_64_results(client: TestClient) -> None:
    sweep = submit(client)
    [trial] = claim(client, sweep["id"])
    response = client.post(
        f"{API}/trials/claim", json={"worker_id": "w", "sweep_id": sweep["id"], "finished": [ended(trial, 0.5)] * 65}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["path"] == "finished"


def test_heartbeat_extends_the_lease(client: TestClient) -> None:
    sweep = submit(client)
    trial = claim(client, sweep["id"])[0]
    response = post(client, trial, "heartbeat")
    assert response.status_code == 200
    assert response.json()["action"] == "continue"
    assert response.json()["lease_expires_at"] >= trial["lease_expires_at"]


def test_report_records_the_curve_and_latest_metrics(client: TestClient) -> None:
    sweep = submit(client)
    trial = claim(client, sweep["id"])[0]
    for step, loss in [(1, 2.0), (2, 1.5), (2, 1.4), (3, 1.0)]:
        response = post(client, trial, "report", step=step, metrics={"train_loss": loss, "val_accuracy": 0.1 * step})
        assert response.status_code == 200
        assert response.json()["action"] == "continue"
    detail = client.get(f"{API}/trials/{trial['id']}").json()
    assert [p["step"] for p in detail["curve"]] == [1, 2, 3]
    # Reporting a step again replaces it.
    assert [p["metrics"]["train_loss"] for p in detail["curve"]] == [2.0, 1.4, 1.0]
    assert detail["metrics"] == {"train_loss": 1.0, "val_accuracy": pytest.approx(0.3)}


def test_reports_record_many_points_in_one_request(client: TestClient) -> None:
    sweep = submit(client)
    trial = claim(client, sweep["id"])[0]
    post(client, trial, "report", step=1, metrics={"train_loss": 3.0})
    points = [
        {"step": 1, "metrics": {"train_loss": 2.0, "val_accuracy": 0.1}},
        {"step": 2, "metrics": {"train_loss": 1.5, "val_accuracy": 0.2}},
        {"step": 2, "metrics": {"train_loss": 1.4}},
        {"step": 3, "metrics": {"train_loss": 1.0}},
    ]
    response = post(client, trial, "reports", points=points)
    assert response.status_code == 200
    assert response.json()["action"] == "continue"
    assert response.json()["lease_expires_at"] >= trial["lease_expires_at"]
    detail = client.get(f"{API}/trials/{trial['id']}").json()
    # The later point of a step replaces the earlier, in this request and across requests.
    assert [(p["step"], p["metrics"]) for p in detail["curve"]] == [
        (1, {"train_loss": 2.0, "val_accuracy": 0.1}),
        (2, {"train_loss": 1.4}),
        (3, {"train_loss": 1.0}),
    ]
    # The latest metrics take the points' values in order.
    assert detail["metrics"] == {"train_loss": 1.0, "val_accuracy": 0.2}


@pytest.mark.parametrize(
    ("points", "path"),
    [
        ([], ["body", "points"]),
        ([{"step": -1, "metrics": {}}], ["body", "points", 0, "step"]),
        ([{"step": 1, "metrics": {}}, {"step": 2}], ["body", "points", 1, "metrics"]),
        ([{"step": 1, "metrics": {}}] * 1001, ["body", "points"]),
    ],
    ids=["empty", "negative-step", "no-metrics", "too-many"],
)
def test_bad_reports_are_422_and_record_nothing(client: TestClient, points: list[Any], path: list[Any]) -> None:
    sweep = submit(client)
    trial = claim(client, sweep["id"])[0]
    response = post(client, trial, "reports", points=points)
    assert response.status_code == 422
    assert path in [error["loc"] for error in response.json()["detail"]]
    assert client.get(f"{API}/trials/{trial['id']}").json()["curve"] == []


def test_finish_records_the_points_it_carries(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 2, "epochs": 1}])
    trial = claim(client, sweep["id"])[0]
    post(client, trial, "report", step=1, metrics={"train_loss": 2.0})
    points = [{"step": 2, "metrics": {"train_loss": 1.0}}, {"step": 3, "metrics": {"train_loss": 0.5}}]
    done = post(client, trial, "finish", status="completed", metrics={"val_accuracy": 0.9}, points=points)
    assert done.status_code == 200
    detail = client.get(f"{API}/trials/{trial['id']}").json()
    assert [(p["step"], p["metrics"]["train_loss"]) for p in detail["curve"]] == [(1, 2.0), (2, 1.0), (3, 0.5)]
    assert detail["metrics"] == {"train_loss": 0.5, "val_accuracy": 0.9}
    # Points after the cancel of a running trial are not recorded, as its reports are not.
    other = claim(client, sweep["id"])[0]
    client.post(f"{API}/sweeps/{sweep['id']}/cancel")
    late = post(client, other, "finish", status="completed", metrics={"val_accuracy": 0.5}, points=points)
    assert late.status_code == 200
    after = client.get(f"{API}/trials/{other['id']}").json()
    assert (after["status"], after["curve"], after["metrics"]) == ("cancelled", [], {"val_accuracy": 0.5})


def test_a_finish_with_a_bad_point_is_422_and_the_trial_runs_on(client: TestClient) -> None:
    sweep = submit(client)
    trial = claim(client, sweep["id"])[0]
    points = [{"step": 1, "metrics": {"train_loss": 1.0}}, {"step": "two", "metrics": {}}]
    response = post(client, trial, "finish", status="completed", metrics={"val_accuracy": 0.9}, points=points)
    assert response.status_code == 422
    assert ["body", "points", 1, "step"] in [error["loc"] for error in response.json()["detail"]]
    detail = client.get(f"{API}/trials/{trial['id']}").json()
    assert (detail["status"], detail["curve"], detail["metrics"]) == ("running", [], {})


def test_finish_stores_final_metrics_and_twice_is_harmless(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 2, "epochs": 1}])
    trial = claim(client, sweep["id"])[0]
    done = post(client, trial, "finish", status="diverged", metrics={"stop_reason": "diverged", "val_accuracy": 0.1})
    assert done.status_code == 200
    assert done.json()["status"] == "diverged"
    assert done.json()["finished_at"] is not None
    again = post(client, trial, "finish", status="completed", metrics={"val_accuracy": 0.99})
    assert again.status_code == 200
    assert again.json() == done.json()
    # A diverged trial is never the best.
    assert client.get(f"{API}/sweeps/{sweep['id']}").json()["best"] is None


def test_failed_trials_keep_their_error(client: TestClient) -> None:
    sweep = submit(client)
    trial = claim(client, sweep["id"])[0]
    done = post(client, trial, "finish", status="failed", metrics={}, error="RuntimeError: boom")
    assert done.json()["status"] == "failed"
    assert client.get(f"{API}/trials/{trial['id']}").json()["error"] == "RuntimeError: boom"


@pytest.mark.parametrize("verb", ["heartbeat", "report", "reports", "finish", "release"])
def test_wrong_lease_token_is_409_and_changes_nothing(client: TestClient, verb: str) -> None:
    sweep = submit(client)
    trial = claim(client, sweep["id"])[0]
    before = client.get(f"{API}/trials/{trial['id']}").json()
    point = {"step": 1, "metrics": {"val_accuracy": 1.0}}
    body: dict[str, Any] = {"lease_token": "not-the-token"}
    if verb == "report":
        body.update(point)
    if verb == "reports":
        body["points"] = [point]
    if verb == "finish":
        body.update(status="completed", metrics={"val_accuracy": 1.0}, points=[point])
    response = client.post(f"{API}/trials/{trial['id']}/{verb}", json=body)
    assert response.status_code == 409
    assert client.get(f"{API}/trials/{trial['id']}").json() == before


def test_unknown_trial_is_404(client: TestClient) -> None:
    assert client.get(f"{API}/trials/12345").status_code == 404
    assert client.post(f"{API}/trials/12345/heartbeat", json={"lease_token": "x"}).status_code == 404
    finish_body = {"lease_token": "x", "status": "completed", "metrics": {}}
    assert client.post(f"{API}/trials/12345/finish", json=finish_body).status_code == 404


def test_expired_lease_requeues_with_next_attempt_and_old_token_is_stale(client: TestClient, database_url: str) -> None:
    sweep = submit(client, stages=[{"trials": 1, "epochs": 1}])
    old = claim(client, sweep["id"], worker="slow")[0]
    post(client, old, "report", step=1, metrics={"val_accuracy": 0.2})
    expire_lease(database_url, old["id"])
    # The silent worker's lease has run out: its words are refused.
    assert post(client, old, "heartbeat").status_code == 409
    new = claim(client, sweep["id"], worker="fast")[0]
    assert new["id"] == old["id"]
    assert new["attempt"] == 2
    assert new["worker_id"] == "fast"
    assert new["lease_token"] != old["lease_token"]
    # The old attempt's curve is gone; its late reports and finish change nothing.
    assert client.get(f"{API}/trials/{old['id']}").json()["curve"] == []
    assert post(client, old, "report", step=1, metrics={"val_accuracy": 0.9}).status_code == 409
    assert post(client, old, "finish", status="completed", metrics={"val_accuracy": 0.9}).status_code == 409
    done = finish(client, new, 0.5)
    assert (done["status"], done["value"], done["worker_id"]) == ("completed", 0.5, "fast")


def test_lease_expiry_fails_the_trial_after_max_attempts(client: TestClient, database_url: str) -> None:
    sweep = submit(client, stages=[{"trials": 1, "epochs": 1}], max_attempts=2)
    for attempt in (1, 2):
        trial = claim(client, sweep["id"])[0]
        assert trial["attempt"] == attempt
        expire_lease(database_url, trial["id"])
    store = client.app.state.store  # type: ignore[attr-defined]
    assert store.expire_leases() == 1
    detail = client.get(f"{API}/trials/{trial['id']}").json()
    assert detail["status"] == "failed"
    assert "lease expired" in detail["error"]
    body = client.get(f"{API}/sweeps/{sweep['id']}").json()
    assert body["status"] == "completed"
    assert body["counts"] == {"failed": 1}


def test_the_reaper_requeues_expired_leases_by_itself(make_client: Any, database_url: str) -> None:
    client = make_client(reaper_interval=0.05)
    sweep = submit(client, stages=[{"trials": 1, "epochs": 1}])
    trial = claim(client, sweep["id"])[0]
    expire_lease(database_url, trial["id"])
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if client.get(f"{API}/trials/{trial['id']}").json()["status"] == "queued":
            break
        time.sleep(0.05)
    detail = client.get(f"{API}/trials/{trial['id']}").json()
    assert (detail["status"], detail["attempt"], detail["worker_id"]) == ("queued", 2, None)


def test_release_requeues_at_once(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 1, "epochs": 1}])
    trial = claim(client, sweep["id"])[0]
    released = post(client, trial, "release")
    assert released.status_code == 200
    assert (released.json()["status"], released.json()["attempt"]) == ("queued", 2)
    assert post(client, trial, "heartbeat").status_code == 409
    again = claim(client, sweep["id"])[0]
    assert again["id"] == trial["id"]


def test_non_finite_metrics_are_stored_as_strings(client: TestClient) -> None:
    sweep = submit(client)
    trial = claim(client, sweep["id"])[0]
    # Python's json writes NaN and Infinity; standard JSON has no such numbers.
    raw = '{"lease_token": "%s", "step": 1, "metrics": {"train_loss": NaN, "val_loss": Infinity}}'
    response = client.post(
        f"{API}/trials/{trial['id']}/report",
        content=raw % trial["lease_token"],
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200
    done = post(client, trial, "finish", status="diverged", metrics={"val_accuracy": "NaN", "train_loss": "-Infinity"})
    assert done.status_code == 200
    detail = client.get(f"{API}/trials/{trial['id']}").json()
    assert detail["curve"][0]["metrics"] == {"train_loss": "NaN", "val_loss": "Infinity"}
    assert detail["metrics"]["train_loss"] == "-Infinity"
    assert detail["value"] is None
    ranked = client.get(f"{API}/sweeps/{sweep['id']}/trials", params={"sort": "-metric"})
    assert ranked.status_code == 200


def test_request_bodies_over_the_limit_are_413(make_client: Any) -> None:
    client = make_client(max_body_bytes=1000)
    response = client.post(
        f"{API}/sweeps", content=b"{" + b" " * 2000 + b"}", headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert client.get(f"{API}/sweeps").json() == []


def test_an_ended_trial_never_changes_again(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 2, "epochs": 1}])
    trial = claim(client, sweep["id"])[0]
    first = post(client, trial, "finish", status="completed", metrics={"val_accuracy": 0.5})
    again = post(client, trial, "finish", status="failed", metrics={"val_accuracy": 0.9}, error="late")
    assert again.status_code == 200
    assert again.json() == first.json()
    carried = {"trial_id": trial["id"], "lease_token": trial["lease_token"], "status": "diverged", "metrics": {}}
    answer = client.post(f"{API}/trials/claim", json={"worker_id": "w", "finished": [carried]}).json()
    assert answer["finished"] == [{"trial_id": trial["id"], "code": 200, "status": "completed", "detail": None}]
    after = client.get(f"{API}/trials/{trial['id']}").json()
    assert (after["status"], after["metrics"], after["error"]) == ("completed", {"val_accuracy": 0.5}, None)


def test_a_trial_cancelled_while_it_ran_takes_its_final_metrics_once(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 2, "epochs": 1}])
    trial = claim(client, sweep["id"])[0]
    client.post(f"{API}/sweeps/{sweep['id']}/cancel")
    first = post(client, trial, "finish", status="completed", metrics={"val_accuracy": 0.5})
    assert (first.status_code, first.json()["status"]) == (200, "cancelled")
    assert first.json()["metrics"] == {"val_accuracy": 0.5}
    # Later finishes, alone or carried by a claim, are harmless and change nothing.
    later = post(client, trial, "finish", status="completed", metrics={"val_accuracy": 0.9})
    assert (later.status_code, later.json()) == (200, first.json())
    carried = {"trial_id": trial["id"], "lease_token": trial["lease_token"], "status": "failed", "metrics": {}}
    answer = client.post(f"{API}/trials/claim", json={"worker_id": "w", "finished": [carried]}).json()
    assert answer["finished"][0]["status"] == "cancelled"
    after = client.get(f"{API}/trials/{trial['id']}").json()
    assert (after["status"], after["metrics"], after["value"]) == ("cancelled", {"val_accuracy": 0.5}, 0.5)


@pytest.mark.parametrize(
    ("verb", "body", "path"),
    [
        ("report", {"step": 1, "metrics": {"val_accuracy": 10**400}}, "metrics.val_accuracy"),
        ("report", {"step": 2**64, "metrics": {"val_accuracy": 0.5}}, "step"),
        ("reports", {"points": [{"step": 1, "metrics": {"epochs_run": -(2**63) - 1}}]}, "points.0.metrics.epochs_run"),
        ("finish", {"status": "completed", "metrics": {"val_accuracy": 2**64}}, "metrics.val_accuracy"),
        ("finish", {"status": "completed", "metrics": {"epochs_run": 10**30}}, "metrics.epochs_run"),
    ],
)
def test_numbers_past_64_bits_in_worker_calls_are_422_and_change_nothing(
    client: TestClient, verb: str, body: dict[str, Any], path: str
) -> None:
    sweep = submit(client, stages=[{"trials": 2, "epochs": 1}])
    [trial] = claim(client, sweep["id"])
    before = client.get(f"{API}/trials/{trial['id']}").json()
    response = post(client, trial, verb, **body)
    assert response.status_code == 422, response.text
    assert [e["path"] for e in response.json()["detail"]] == [path]
    assert "64-bit" in response.json()["message"] or "less than or equal" in response.json()["message"]
    assert client.get(f"{API}/trials/{trial['id']}").json() == before
    # The sweep still reads, lists and draws.
    assert client.get(f"{API}/sweeps/{sweep['id']}/points").status_code == 200
    assert client.get(f"{API}/sweeps/{sweep['id']}/curves", params={"trials": str(trial["id"])}).status_code == 200
    assert finish(client, trial, 2**53)["value"] == 2.0**53


def test_the_largest_64_bit_numbers_are_taken_and_read_back(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 1, "epochs": 1}])
    [trial] = claim(client, sweep["id"])
    metrics = {"val_accuracy": 2**63 - 1, "epochs_run": -(2**63 - 1), "loss": 1.7976931348623157e308}
    assert post(client, trial, "report", step=10_000_000, metrics=metrics).status_code == 200
    done = finish(client, trial, 0.5)
    assert done["metrics"]["epochs_run"] == -(2**63 - 1)
    points = client.get(f"{API}/sweeps/{sweep['id']}/points").json()
    assert points["epochs_run"] == [-(2**63 - 1)]
    curves = client.get(f"{API}/sweeps/{sweep['id']}/curves", params={"trials": str(trial["id"])}).json()
    assert curves["trials"][0]["metrics"]["loss"] == [1.7976931348623157e308]
