"""The pull loop against the real app and the real trainer.

Where a test needs something to happen mid-trial (a user cancels, the lease moves on, the
worker is told to shut down), it wraps ``trainer.loop.train`` so that the event happens at a
known epoch, through the same public calls a user or a signal handler would make.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hypersweep.trainer import TrainerConfig, TrainResult, train
from hypersweep.worker.agent import Agent, IdleBackoff, Outcome
from hypersweep.worker.channel import FALLBACK_LEASE_SECONDS, lease_seconds_left
from hypersweep.worker.client import Ending, ServiceClient, ServiceUnavailable
from hypersweep.worker.wire import Action, ClaimedTrial, FinishOutcome, Sweep, Trial
from tests.conftest import sweep_doc

#: Small and fast: the 300-point spiral, a narrow network.
TINY_TRAINER = {"dataset": "spiral", "batch_size": 32, "hidden": 16, "optimizer": "adam"}


@pytest.fixture
def service(client: TestClient) -> ServiceClient:
    return ServiceClient(client)


def submit(service: ServiceClient, *, trials: int, epochs: int, **overrides: Any) -> Sweep:
    doc = sweep_doc(
        space={"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "scale": "log"}},
        search={"kind": "grid", "grid_points": trials},
        stages=[{"trials": trials, "epochs": epochs}],
        trainer=TINY_TRAINER,
    )
    doc.update(overrides)
    return service.submit_sweep(doc)


def agent_for(service: ServiceClient, sweep_id: int, **kwargs: Any) -> Agent:
    # No idle waits worth the name: these tests never wait on other workers.
    backoff = IdleBackoff(base=0.01, cap=0.05)
    return Agent(service, worker_id="test-worker", sweep_id=sweep_id, backoff=backoff, **kwargs)


def train_with(hook: Callable[[int], None]) -> Callable[..., TrainResult]:
    """``train`` with ``hook(epoch)`` run at the end of each epoch, before the agent's report."""

    def wrapped(config: TrainerConfig, *, on_epoch: Callable[[int, dict[str, float]], bool], **kw: Any) -> TrainResult:
        def hooked(epoch: int, metrics: dict[str, float]) -> bool:
            hook(epoch)
            return on_epoch(epoch, metrics)

        return train(config, on_epoch=hooked, **kw)

    return wrapped


def test_agent_runs_a_sweep_to_completion(service: ServiceClient) -> None:
    sweep = submit(service, trials=3, epochs=2)
    agent = agent_for(service, sweep.id)

    assert agent.run() == 3
    assert agent.outcomes == [Outcome.COMPLETED] * 3

    done = service.get_sweep(sweep.id)
    assert done.status == "completed"
    assert done.counts == {"completed": 3}
    assert done.best is not None
    for listed in service.list_trials(sweep.id):
        trial = service.get_trial(listed.id)
        assert trial.worker_id == "test-worker"
        assert trial.attempt == 1
        assert [point.step for point in trial.curve] == [1, 2]
        assert trial.metrics["epochs_run"] == 2
        assert trial.metrics["stop_reason"] == "completed"
        assert 0.0 <= trial.metrics["test_accuracy"] <= 1.0
        # The gap between the two accuracies reaches the server, epoch by epoch.
        assert all(0.0 <= point.metrics["train_accuracy"] <= 1.0 for point in trial.curve)
        assert trial.metrics["train_accuracy"] == trial.curve[-1].metrics["train_accuracy"]


def test_the_log_names_each_trial_by_its_number_and_its_id(
    service: ServiceClient, caplog: pytest.LogCaptureFixture
) -> None:
    sweep = submit(service, trials=2, epochs=1)
    with caplog.at_level(logging.INFO, logger="hypersweep.worker.agent"):
        agent_for(service, sweep.id).run()
    ids = {trial.number: trial.id for trial in service.list_trials(sweep.id)}
    lines = [record.getMessage() for record in caplog.records]
    for number, trial_id in ids.items():
        name = f"trial {number} (id {trial_id}): "
        assert [line.split(": ")[1].split()[0] for line in lines if line.startswith(name)] == ["starting", "completed"]
    assert all(line.startswith("trial ") and " (id " in line for line in lines)


def test_a_diverging_trial_is_finished_as_diverged(service: ServiceClient) -> None:
    sweep = submit(
        service,
        trials=1,
        epochs=5,
        space={"lr": {"type": "categorical", "values": [1000.0]}},
        trainer={**TINY_TRAINER, "optimizer": "sgd"},
    )
    agent = agent_for(service, sweep.id)
    agent.run()

    [trial] = service.list_trials(sweep.id)
    assert agent.outcomes == [Outcome.DIVERGED]
    assert trial.status == "diverged"
    assert trial.metrics["epochs_run"] == 1
    assert trial.metrics["stop_reason"] in ("diverged", "nan")


def test_a_trainer_error_is_reported_as_failed(service: ServiceClient, tmp_path: Path) -> None:
    sweep = submit(service, trials=1, epochs=1, trainer={**TINY_TRAINER, "dataset": "npz:missing.npz"})
    agent = agent_for(service, sweep.id, data_dir=str(tmp_path))
    agent.run()

    [trial] = service.list_trials(sweep.id)
    assert agent.outcomes == [Outcome.FAILED]
    assert trial.status == "failed"
    assert "missing.npz" in trial.error
    assert "Error" in trial.error  # the exception's type is part of the summary
    assert service.get_sweep(sweep.id).status == "completed"


def test_agent_stops_training_when_the_sweep_is_cancelled(
    service: ServiceClient, caplog: pytest.LogCaptureFixture
) -> None:
    # Digits epochs take long enough that the "stop" answer to epoch 1's report, which the
    # agent reads at the next epoch end, arrives long before the last epoch.
    epochs = 50
    sweep = submit(service, trials=2, epochs=epochs, trainer={**TINY_TRAINER, "dataset": "digits"})

    def cancel_after_first_epoch(epoch: int) -> None:
        if epoch == 1:
            service.cancel_sweep(sweep.id)

    # Every epoch is reported as it ends, so the cancel is seen at the next epoch end.
    agent = agent_for(service, sweep.id, train_fn=train_with(cancel_after_first_epoch), report_every=0)
    with caplog.at_level(logging.INFO, logger="hypersweep.worker.agent"):
        assert agent.run() == 1
    # It ended as the server says, not as the trainer returned: cancelled, never "completed".
    assert agent.outcomes == [Outcome.CANCELLED]
    [ended] = [r.getMessage() for r in caplog.records if "starting" not in r.getMessage()]
    assert ended.startswith("trial 0 (id ") and "stopped by the server, its sweep was cancelled" in ended
    assert "completed" not in ended

    # Trials are generated as they are claimed, so the cancelled sweep has just the one.
    [listed] = service.list_trials(sweep.id)
    ran = service.get_trial(listed.id)
    assert ran.status == "cancelled"
    # Every report came after the cancel and answered "stop" without recording a point;
    # training stopped early and the finish still delivered the final metrics.
    assert ran.curve == ()
    assert ran.metrics["stop_reason"] == "stopped"
    assert 1 <= ran.metrics["epochs_run"] < epochs
    assert service.get_sweep(sweep.id).status == "cancelled"


def test_a_lost_lease_abandons_the_trial_without_finishing(service: ServiceClient) -> None:
    sweep = submit(service, trials=1, epochs=50, trainer={**TINY_TRAINER, "dataset": "digits"})
    [trial] = service.claim(worker_id="test-worker", sweep_id=sweep.id)
    epochs_seen: list[int] = []

    def lease_moves_on(epoch: int) -> None:
        epochs_seen.append(epoch)
        if epoch == 1:
            # What the server does when the lease lapses: the token stops being current.
            service.release(trial.id, lease_token=trial.lease_token)

    agent = agent_for(service, sweep.id, train_fn=train_with(lease_moves_on), report_every=0)
    assert agent.run_trial(trial) == Outcome.LEASE_LOST
    assert len(epochs_seen) < 50  # training stopped once the 409 came back

    after = service.get_trial(trial.id)
    assert after.status == "queued"
    assert after.curve == ()
    assert after.metrics == {}


def test_stop_request_mid_trial_releases_it_for_another_worker(service: ServiceClient) -> None:
    sweep = submit(service, trials=1, epochs=20)
    agent: Agent

    def shutdown_after_first_epoch(epoch: int) -> None:
        if epoch == 1:
            agent.request_stop()  # what the SIGTERM handler does

    agent = agent_for(service, sweep.id, train_fn=train_with(shutdown_after_first_epoch))
    assert agent.run() == 1
    assert agent.outcomes == [Outcome.RELEASED]

    [trial] = service.list_trials(sweep.id)
    assert trial.status == "queued"
    assert trial.attempt == 2

    successor = agent_for(service, sweep.id)
    assert successor.run() == 1
    assert service.get_trial(trial.id).status == "completed"


def test_heartbeats_keep_a_trial_leased_through_a_long_epoch(
    make_client: Callable[..., TestClient],
) -> None:
    # A two-second lease, expired leases reaped every 0.1 s, and epochs that take 3 s
    # between reports: only the heartbeat thread keeps the lease alive.
    service = ServiceClient(make_client(lease_seconds=2.0, reaper_interval=0.1))
    sweep = submit(service, trials=1, epochs=2)
    agent = agent_for(service, sweep.id, train_fn=train_with(lambda epoch: time.sleep(3.0)))

    assert agent.run() == 1
    assert agent.outcomes == [Outcome.COMPLETED]
    [trial] = service.list_trials(sweep.id)
    assert trial.status == "completed"
    assert trial.attempt == 1


def test_once_runs_a_single_trial(service: ServiceClient) -> None:
    sweep = submit(service, trials=3, epochs=1)
    agent = agent_for(service, sweep.id, once=True)
    assert agent.run() == 1
    after = service.get_sweep(sweep.id)
    assert after.status == "running"
    assert after.counts == {"completed": 1}


class RecordingClient(ServiceClient):
    """The real client, noting the curve points each report and finish carried; with
    ``reports_fail`` every report is refused as if the server were out of reach."""

    def __init__(self, http: TestClient, *, reports_fail: bool = False) -> None:
        super().__init__(http)
        self.reports_fail = reports_fail
        self.reported: list[list[int]] = []
        self.finished_with: list[int] = []
        #: The worker protocol's requests in order: "claim", "finish" or "finish+claim".
        self.requests: list[str] = []
        #: Called after each claim that carried a finish, with the trials it leased.
        self.after_finish_and_claim: Callable[[list[ClaimedTrial]], None] = lambda trials: None

    def report(self, trial_id: int, *, lease_token: str, step: int, metrics: Mapping[str, Any]) -> Action:
        return self.report_many(trial_id, lease_token=lease_token, points=[(step, metrics)])

    def report_many(
        self, trial_id: int, *, lease_token: str, points: Sequence[tuple[int, Mapping[str, Any]]]
    ) -> Action:
        if self.reports_fail:
            raise ServiceUnavailable("the server could not be reached")
        self.reported.append([step for step, _ in points])
        return super().report_many(trial_id, lease_token=lease_token, points=points)

    def finish(self, trial_id: int, **kwargs: Any) -> Trial:
        self.requests.append("finish")
        self.finished_with += [step for step, _ in kwargs.get("points", ())]
        return super().finish(trial_id, **kwargs)

    def finish_and_claim(
        self, endings: Sequence[Ending], **kwargs: Any
    ) -> tuple[list[FinishOutcome], list[ClaimedTrial]]:
        self.requests.append("finish+claim" if endings else "claim")
        self.finished_with += [step for ending in endings for step, _ in ending.points]
        outcomes, trials = super().finish_and_claim(endings, **kwargs)
        if endings:
            self.after_finish_and_claim(trials)
        return outcomes, trials


def test_each_trial_is_finished_by_the_request_that_claims_the_next(client: TestClient) -> None:
    service = RecordingClient(client)
    sweep = submit(service, trials=3, epochs=2)
    agent = agent_for(service, sweep.id)
    assert agent.run() == 3
    assert agent.outcomes == [Outcome.COMPLETED] * 3
    # The last finish learns that nothing is left, so the agent ends without asking again.
    assert service.requests == ["claim", "finish+claim", "finish+claim", "finish+claim"]
    assert service.get_sweep(sweep.id).counts == {"completed": 3}


def test_trials_claimed_with_a_finish_are_given_back_when_the_agent_stops(client: TestClient) -> None:
    service = RecordingClient(client)
    sweep = submit(service, trials=3, epochs=1)
    agent = agent_for(service, sweep.id)
    ahead: list[ClaimedTrial] = []

    def shut_down(trials: list[ClaimedTrial]) -> None:
        ahead.extend(trials)
        agent.request_stop()  # a SIGTERM just as the next trial arrived

    service.after_finish_and_claim = shut_down
    assert agent.run() == 1
    assert agent.outcomes == [Outcome.COMPLETED]
    [next_trial] = ahead
    after = service.get_trial(next_trial.id)
    assert (after.status, after.attempt, after.worker_id) == ("queued", 2, None)
    assert service.get_sweep(sweep.id).counts == {"completed": 1, "queued": 1}


def test_a_finish_the_claim_refuses_abandons_the_trial(client: TestClient) -> None:
    service = RecordingClient(client)
    sweep = submit(service, trials=1, epochs=3)
    [trial] = service.claim(worker_id="test-worker", sweep_id=sweep.id)

    released: list[int] = []

    def lease_moves_on(epoch: int) -> None:
        if epoch == 3 and not released:
            # The lease lapses after the last report went out: only the finish finds out.
            service.release(trial.id, lease_token=trial.lease_token)
            released.append(trial.id)

    agent = agent_for(service, sweep.id, train_fn=train_with(lease_moves_on), report_every=60)
    assert agent.run_trial(trial, claim_next=True) == Outcome.LEASE_LOST
    assert service.requests[-1] == "finish+claim"
    # The refused result changed nothing, and the same request leased the trial again.
    again = service.get_trial(trial.id)
    assert (again.status, again.attempt, again.metrics, again.curve) == ("running", 2, {}, ())
    assert agent.run() == 1
    assert service.get_trial(trial.id).status == "completed"


def test_epochs_between_reports_go_together_and_the_rest_with_the_finish(client: TestClient) -> None:
    service = RecordingClient(client)
    epochs = 40
    sweep = submit(service, trials=1, epochs=epochs)
    # Epochs of at least 20 ms, points sent at most every half second.
    agent = agent_for(service, sweep.id, train_fn=train_with(lambda epoch: time.sleep(0.02)), report_every=0.5)
    started = time.monotonic()
    assert agent.run() == 1
    seconds = time.monotonic() - started

    [listed] = service.list_trials(sweep.id)
    trial = service.get_trial(listed.id)
    assert [point.step for point in trial.curve] == list(range(1, epochs + 1))
    sent = [step for steps in service.reported for step in steps] + service.finished_with
    assert sent == list(range(1, epochs + 1))  # each point once, in order
    # However long the epochs took on this machine, no two reports came closer than the interval.
    assert 1 <= len(service.reported) <= seconds / 0.5 + 1


def test_a_trial_shorter_than_the_report_interval_sends_its_curve_with_the_finish(client: TestClient) -> None:
    service = RecordingClient(client)
    sweep = submit(service, trials=2, epochs=5)
    agent = agent_for(service, sweep.id, report_every=60)
    assert agent.run() == 2
    assert service.reported == []
    assert service.finished_with == [1, 2, 3, 4, 5] * 2
    for listed in service.list_trials(sweep.id):
        assert [point.step for point in service.get_trial(listed.id).curve] == [1, 2, 3, 4, 5]


def test_points_the_server_did_not_get_go_with_the_finish(client: TestClient) -> None:
    service = RecordingClient(client, reports_fail=True)
    sweep = submit(service, trials=1, epochs=6)
    agent = agent_for(service, sweep.id, train_fn=train_with(lambda epoch: time.sleep(0.02)), report_every=0)
    assert agent.run() == 1
    assert agent.outcomes == [Outcome.COMPLETED]
    assert service.finished_with == [1, 2, 3, 4, 5, 6]
    [listed] = service.list_trials(sweep.id)
    assert [point.step for point in service.get_trial(listed.id).curve] == [1, 2, 3, 4, 5, 6]


def test_lease_seconds_left_reads_the_servers_expiry() -> None:
    now = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert lease_seconds_left(now + timedelta(seconds=45), now=now) == 45
    assert lease_seconds_left(datetime(2030, 1, 1, 12, 0, 30), now=now) == 30  # naive means UTC
    assert lease_seconds_left(now - timedelta(seconds=5), now=now) == FALLBACK_LEASE_SECONDS


def test_results_a_refused_claim_carried_are_finished_one_by_one(client: TestClient) -> None:
    service = RecordingClient(client)
    sweep = submit(service, trials=1, epochs=2)
    [trial] = service.claim(worker_id="test-worker", sweep_id=sweep.id)
    # A claim on a sweep that is gone is refused as a whole (404), results and all.
    agent = agent_for(service, 987654)
    assert agent.run_trial(trial, claim_next=True) == Outcome.COMPLETED
    assert service.requests == ["claim", "finish+claim", "finish"]
    after = service.get_trial(trial.id)
    assert after.status == "completed"
    assert [point.step for point in after.curve] == [1, 2]


@pytest.mark.parametrize("status_code", [None, 503])
def test_results_a_claim_could_not_deliver_are_not_retried_one_by_one(
    client: TestClient, status_code: int | None
) -> None:
    service = RecordingClient(client)
    sweep = submit(service, trials=1, epochs=2)
    [trial] = service.claim(worker_id="test-worker", sweep_id=sweep.id)

    def out_of_reach(endings: Sequence[Ending], **kwargs: Any) -> Any:
        service.requests.append("finish+claim")
        raise ServiceUnavailable("POST /trials/claim failed after 9 attempts", status_code=status_code)

    service.finish_and_claim = out_of_reach  # type: ignore[method-assign]
    agent = agent_for(service, sweep.id)
    # With the server or its database out of reach a finish would fare no better: the
    # result is given up and the lease lapses.
    assert agent.run_trial(trial, claim_next=True) == Outcome.UNDELIVERED
    assert service.requests == ["claim", "finish+claim"]
    assert service.get_trial(trial.id).status == "running"


@pytest.mark.parametrize("fuse", [1, 2])
def test_results_past_what_a_claim_may_carry_are_finished_on_their_own(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, fuse: int
) -> None:
    monkeypatch.setattr("hypersweep.worker.agent.CARRIED_POINTS", 3)
    service = RecordingClient(client)
    sweep = submit(service, trials=2, epochs=2)
    agent = agent_for(service, sweep.id, fuse=fuse, report_every=60)  # every point goes with the finish
    assert agent.run() == 2
    assert agent.outcomes == [Outcome.COMPLETED] * 2
    if fuse == 1:
        # Two points each fit: every finish rides on a claim.
        assert service.requests == ["claim", "finish+claim", "finish+claim"]
    else:
        # The group's four points do not: the first member's result goes alone.
        assert service.requests == ["claim", "finish", "finish+claim"]
    for listed in service.list_trials(sweep.id):
        trial = service.get_trial(listed.id)
        assert trial.status == "completed"
        assert [point.step for point in trial.curve] == [1, 2]
