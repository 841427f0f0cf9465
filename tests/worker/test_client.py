"""ServiceClient against the real app (Starlette's TestClient is an httpx.Client)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from hypersweep.trainer.config import TrainerConfig
from hypersweep.worker.client import Ending, LeaseLost, ServiceClient, ServiceError
from hypersweep.worker.wire import ClaimedTrial, Sweep, Trial
from tests.conftest import sweep_doc


@pytest.fixture
def service(client: TestClient) -> ServiceClient:
    return ServiceClient(client)


def test_a_sweep_round_trips_through_every_read_endpoint(service: ServiceClient) -> None:
    sweep = service.submit_sweep(sweep_doc(name="round-trip"))
    assert isinstance(sweep, Sweep)
    assert sweep.status == "running"
    assert service.get_sweep(sweep.id).name == "round-trip"
    assert [s.id for s in service.list_sweeps(limit=10)] == [sweep.id]

    [trial] = service.claim(worker_id="w1", sweep_id=sweep.id)
    detail = service.get_trial(trial.id)
    assert (type(detail), detail.status, detail.curve) == (Trial, "running", ())
    running = service.list_trials(sweep.id, status="running")
    assert [(type(t), t.id, t.curve) for t in running] == [(Trial, trial.id, None)]
    assert service.healthz()["status"] == "ok"


def test_claim_returns_leased_trials_with_their_trainer_settings(service: ServiceClient) -> None:
    sweep = service.submit_sweep(sweep_doc(stages=[{"trials": 3, "epochs": 2}]))
    trials = service.claim(worker_id="w1", sweep_id=sweep.id, count=2)
    assert len(trials) == 2
    for trial in trials:
        assert isinstance(trial, ClaimedTrial)
        assert trial.worker_id == "w1"
        assert trial.lease_token
        assert trial.lease_expires_at > trial.created_at
        assert trial.settings["epochs"] == 2
        assert trial.settings["lr"] == trial.params["lr"]


def test_a_claimed_trial_reads_its_settings_as_a_trainer_config_once(service: ServiceClient) -> None:
    sweep = service.submit_sweep(sweep_doc(stages=[{"trials": 1, "epochs": 2}]))
    [trial] = service.claim(worker_id="w1", sweep_id=sweep.id)
    config = trial.config
    assert isinstance(config, TrainerConfig)
    assert (config.epochs, config.lr, config.dropout, config.dataset) == (
        2,
        trial.params["lr"],
        trial.params["dropout"],
        "digits",
    )
    assert trial.config is config  # parsed once, on first use
    # The parsed config is no part of the trial's value: equality and dumps ignore it.
    assert ClaimedTrial.model_validate(trial.model_dump(by_alias=True)) == trial


def test_settings_that_are_no_trainer_config_stay_readable_as_settings() -> None:
    # A trial of another program: its settings are any JSON, and only ``config`` objects.
    trial = ClaimedTrial.model_validate(
        {
            "id": 1,
            "sweep_id": 1,
            "stage": 0,
            "number": 0,
            "params": {"channels": 16},
            "status": "running",
            "attempt": 1,
            "worker_id": "w1",
            "metrics": {},
            "value": None,
            "created_at": "2030-01-01T12:00:00Z",
            "started_at": "2030-01-01T12:00:00Z",
            "finished_at": None,
            "error": None,
            "trainer": {"channels": 16, "layout": {"blocks": [1, 2]}, "epochs": 3},
            "lease_token": "t",
            "lease_expires_at": "2030-01-01T12:01:00Z",
        }
    )
    assert trial.settings == {"channels": 16, "layout": {"blocks": [1, 2]}, "epochs": 3}
    with pytest.raises(ValueError, match="unknown trainer settings: channels, layout") as first:
        _ = trial.config
    with pytest.raises(ValueError) as again:
        _ = trial.config
    assert again.value is first.value  # read once: the same error again, not a second parse


def test_claim_answers_an_empty_list_when_there_is_nothing_to_do(service: ServiceClient) -> None:
    assert service.claim(worker_id="w1") == []
    sweep = service.submit_sweep(sweep_doc(stages=[{"trials": 1, "epochs": 1}]))
    assert len(service.claim(worker_id="w1", sweep_id=sweep.id)) == 1
    assert service.claim(worker_id="w2", sweep_id=sweep.id) == []


def test_finish_and_claim_ends_trials_and_leases_the_next_in_one_request(service: ServiceClient) -> None:
    sweep = service.submit_sweep(sweep_doc(stages=[{"trials": 3, "epochs": 1}]))
    a, b = service.claim(worker_id="w1", sweep_id=sweep.id, count=2)
    endings = [
        Ending(a.id, a.lease_token, "completed", {"val_accuracy": math.inf}, points=[(1, {"train_loss": 1.0})]),
        Ending(b.id, "not-the-token", "completed", {"val_accuracy": 0.5}),
    ]
    outcomes, trials = service.finish_and_claim(endings, worker_id="w1", sweep_id=sweep.id, count=5)
    assert [(o.trial_id, o.code) for o in outcomes] == [(a.id, 200), (b.id, 409)]
    assert [t.number for t in trials] == [2]
    done = service.get_trial(a.id)
    assert done.curve is not None
    assert (done.status, done.metrics["val_accuracy"], len(done.curve)) == ("completed", math.inf, 1)
    assert service.get_trial(b.id).status == "running"
    # Nothing left to lease: the outcomes still come back.
    outcomes, trials = service.finish_and_claim(
        [Ending(b.id, b.lease_token, "failed", {}, error="boom")], worker_id="w1", sweep_id=sweep.id
    )
    assert (outcomes[0].code, outcomes[0].status, trials) == (200, "failed", [])


def test_stale_lease_token_raises_lease_lost(service: ServiceClient) -> None:
    sweep = service.submit_sweep(sweep_doc(stages=[{"trials": 1, "epochs": 1}]))
    [trial] = service.claim(worker_id="w1", sweep_id=sweep.id)
    token = trial.lease_token

    with pytest.raises(LeaseLost):
        service.heartbeat(trial.id, lease_token="not-the-token")
    service.release(trial.id, lease_token=token)
    with pytest.raises(LeaseLost) as info:
        service.heartbeat(trial.id, lease_token=token)
    assert info.value.status_code == 409
    with pytest.raises(LeaseLost):
        service.report(trial.id, lease_token=token, step=1, metrics={"val_loss": 1.0})
    with pytest.raises(LeaseLost):
        service.finish(trial.id, lease_token=token, status="completed", metrics={})


def test_release_requeues_the_trial_at_once(service: ServiceClient) -> None:
    sweep = service.submit_sweep(sweep_doc(stages=[{"trials": 1, "epochs": 1}]))
    [trial] = service.claim(worker_id="w1", sweep_id=sweep.id)
    released = service.release(trial.id, lease_token=trial.lease_token)
    assert released.status == "queued"
    [again] = service.claim(worker_id="w2", sweep_id=sweep.id)
    assert again.id == trial.id
    assert again.attempt == trial.attempt + 1
    assert again.lease_token != trial.lease_token


def test_finish_records_the_final_metrics_and_sets_best(service: ServiceClient) -> None:
    sweep = service.submit_sweep(sweep_doc(stages=[{"trials": 1, "epochs": 1}]))
    [trial] = service.claim(worker_id="w1", sweep_id=sweep.id)
    answer = service.report(trial.id, lease_token=trial.lease_token, step=1, metrics={"val_accuracy": 0.5})
    assert answer.action == "continue"
    metrics = {"val_accuracy": 0.75, "epochs_run": 1, "stop_reason": "completed"}
    finished = service.finish(trial.id, lease_token=trial.lease_token, status="completed", metrics=metrics)
    assert finished.status == "completed"
    # Finishing twice with the same token is harmless.
    service.finish(trial.id, lease_token=trial.lease_token, status="completed", metrics=metrics)

    done = service.get_sweep(sweep.id)
    assert done.status == "completed"
    assert done.best is not None
    assert done.best.id == trial.id
    assert done.best.metrics["val_accuracy"] == 0.75


def test_non_finite_metrics_survive_the_round_trip(service: ServiceClient) -> None:
    sweep = service.submit_sweep(sweep_doc(stages=[{"trials": 1, "epochs": 1}]))
    [trial] = service.claim(worker_id="w1", sweep_id=sweep.id)
    service.report(
        trial.id,
        lease_token=trial.lease_token,
        step=1,
        metrics={"train_loss": math.inf, "val_loss": math.nan, "val_accuracy": 0.1},
    )
    service.finish(
        trial.id,
        lease_token=trial.lease_token,
        status="diverged",
        metrics={"train_loss": -math.inf, "initial_loss": 2.3},
    )
    stored = service.get_trial(trial.id)
    assert stored.status == "diverged"
    assert stored.metrics["train_loss"] == -math.inf
    assert math.isnan(stored.metrics["val_loss"])
    assert stored.curve is not None
    assert stored.curve[0].metrics["train_loss"] == math.inf
    # Back in the server's JSON form, they are the strings JSON allows.
    assert stored.as_json()["metrics"]["train_loss"] == "-Infinity"
    assert stored.as_json()["curve"][0]["metrics"]["val_loss"] == "NaN"


def test_refusals_carry_the_servers_detail(service: ServiceClient) -> None:
    with pytest.raises(ServiceError) as missing:
        service.get_sweep(999)
    assert missing.value.status_code == 404
    assert "999" in str(missing.value.detail)

    bad = sweep_doc(space={"lr": {"type": "float", "low": 1.0, "high": 0.1}})
    with pytest.raises(ServiceError) as invalid:
        service.submit_sweep(bad)
    assert invalid.value.status_code == 422
    assert "space.lr" in str(invalid.value)


def test_a_token_protected_server_refuses_a_client_without_it(
    make_client: Callable[..., TestClient],
) -> None:
    http = make_client(token=SecretStr("s3cret"))
    with pytest.raises(ServiceError) as refused:
        ServiceClient(http).list_sweeps()
    assert refused.value.status_code == 401

    http.headers["Authorization"] = "Bearer s3cret"
    assert ServiceClient(http).list_sweeps() == []
