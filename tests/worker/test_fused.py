"""The pull loop with ``fuse`` against the real app: grouping, per-trial identity inside a
fused group (curves, early stops, the server's "stop", lost leases), and failures."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import torch

from hypersweep.trainer import TrainerConfig, TrainResult, train
from hypersweep.trainer.fused import train_fused
from hypersweep.worker.agent import Agent, IdleBackoff, Outcome
from hypersweep.worker.client import Ending, ServiceClient
from hypersweep.worker.fused import group_trials, trial_fusion_key
from hypersweep.worker.wire import ClaimedTrial, Sweep, Trial
from tests.conftest import sweep_doc

TINY_TRAINER = {"dataset": "spiral", "batch_size": 32, "hidden": 16, "optimizer": "momentum"}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # Small models gain nothing from more threads, and on a busy machine they wait for them.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def service(client: Any) -> ServiceClient:
    return ServiceClient(client)


def submit(service: ServiceClient, *, lrs: Sequence[float], epochs: int, **overrides: Any) -> Sweep:
    """A sweep with one trial per learning rate in ``lrs``."""
    doc = sweep_doc(
        space={"lr": {"type": "categorical", "values": list(lrs)}},
        search={"kind": "grid"},
        stages=[{"trials": len(lrs), "epochs": epochs}],
        trainer=TINY_TRAINER,
        parallelism=len(lrs),
    )
    doc.update(overrides)
    return service.submit_sweep(doc)


class Recorder:
    """``train_fused`` and ``train`` as the agent calls them, recording what ran how, with
    ``hook(epoch)`` run at each epoch end of the first member, before its report."""

    def __init__(self, hook: Callable[[int], None] | None = None) -> None:
        self.hook = hook
        self.fused_groups: list[int] = []
        self.alone = 0

    def fused(self, configs: list[TrainerConfig], *, on_epoch: list[Any], **kw: Any) -> list[TrainResult]:
        self.fused_groups.append(len(configs))
        first = on_epoch[0]

        def hooked(epoch: int, metrics: dict[str, float]) -> bool:
            if self.hook is not None:
                self.hook(epoch)
            return bool(first(epoch, metrics))

        return train_fused(configs, on_epoch=[hooked, *on_epoch[1:]], **kw)

    def single(self, config: TrainerConfig, **kw: Any) -> TrainResult:
        self.alone += 1
        return train(config, **kw)


def agent_for(service: ServiceClient, sweep_id: int, recorder: Recorder, *, fuse: int, **kwargs: Any) -> Agent:
    return Agent(
        service,
        worker_id="fused-worker",
        sweep_id=sweep_id,
        backoff=IdleBackoff(base=0.01, cap=0.05),
        fuse=fuse,
        fused_train_fn=recorder.fused,
        train_fn=recorder.single,
        **kwargs,
    )


def trials_by_lr(service: ServiceClient, sweep_id: int) -> dict[float, Trial]:
    return {t.params["lr"]: service.get_trial(t.id) for t in service.list_trials(sweep_id)}


def claimed(settings: dict[str, Any], number: int) -> ClaimedTrial:
    """A claimed trial with these resolved settings, as a claim's answer would carry it."""
    return ClaimedTrial.model_validate(
        {
            "id": number,
            "sweep_id": 1,
            "stage": 0,
            "number": number,
            "params": {},
            "status": "running",
            "attempt": 1,
            "worker_id": "w",
            "metrics": {},
            "value": None,
            "created_at": "2030-01-01T12:00:00Z",
            "started_at": "2030-01-01T12:00:00Z",
            "finished_at": None,
            "error": None,
            "trainer": settings,
            "lease_token": "t",
            "lease_expires_at": "2030-01-01T12:01:00Z",
        }
    )


def test_trials_are_grouped_by_their_fixed_settings_in_claim_order() -> None:
    base = {"dataset": "digits", "epochs": 2, "hidden": 32}
    trials = [
        claimed({**base, "lr": 0.1}, 1),
        claimed({**base, "hidden": 64, "lr": 0.1}, 2),
        claimed({**base, "lr": 0.01, "dropout": 0.5, "reg": 1e-3, "momentum": 0.1}, 3),
        claimed({**base, "hidden": 64, "lr": 0.2}, 4),
        claimed({**base, "seed": 7}, 5),
    ]
    assert [[t.id for t in group] for group in group_trials(trials)] == [[1, 3], [2, 4], [5]]


def test_a_trial_whose_settings_cannot_be_read_is_a_group_of_its_own() -> None:
    good = {"dataset": "digits", "lr": 0.1}
    trials = [claimed(good, 1), claimed({"lion": 1}, 2), claimed({"hidden": [1]}, 3), claimed(good, 4)]
    assert trial_fusion_key(trials[1]) is None and trial_fusion_key(trials[2]) is None
    assert [[t.id for t in group] for group in group_trials(trials)] == [[1, 4], [2], [3]]


def test_fuse_must_be_a_claim_size_the_service_accepts(service: ServiceClient) -> None:
    for fuse in (0, 65):
        with pytest.raises(ValueError, match="fuse must be between 1 and 64"):
            Agent(service, worker_id="w", fuse=fuse)


def test_a_fused_sweep_gives_every_trial_the_curve_it_gets_alone(service: ServiceClient) -> None:
    lrs = [0.3, 0.1, 0.03, 0.01]
    fused_sweep = submit(service, lrs=lrs, epochs=3)
    single_sweep = submit(service, lrs=lrs, epochs=3)
    fused_recorder, single_recorder = Recorder(), Recorder()

    assert agent_for(service, fused_sweep.id, fused_recorder, fuse=4).run() == 4
    assert agent_for(service, single_sweep.id, single_recorder, fuse=1).run() == 4

    assert fused_recorder.fused_groups == [4] and fused_recorder.alone == 0
    assert single_recorder.fused_groups == [] and single_recorder.alone == 4
    fused, single = trials_by_lr(service, fused_sweep.id), trials_by_lr(service, single_sweep.id)
    for lr in lrs:
        mine, theirs = fused[lr], single[lr]
        assert mine.status == theirs.status == "completed"
        assert mine.worker_id == "fused-worker"
        assert [p.step for p in mine.curve] == [p.step for p in theirs.curve] == [1, 2, 3]
        for a, b in zip(mine.curve, theirs.curve, strict=True):
            assert a.metrics == pytest.approx(b.metrics, rel=1e-4, abs=1e-5)
        for key in ("val_accuracy", "test_accuracy", "initial_loss", "train_loss"):
            assert mine.metrics[key] == pytest.approx(theirs.metrics[key], rel=1e-4, abs=1e-5)
        assert mine.metrics["stop_reason"] == "completed"
    assert service.get_sweep(fused_sweep.id).status == "completed"


def test_a_diverging_member_is_finished_while_the_others_train_on(service: ServiceClient) -> None:
    sweep = submit(service, lrs=[0.05, 1000.0, 0.02], epochs=4)
    seen: list[str] = []

    def look(epoch: int) -> None:
        # The others wait here, at the end of their first epoch, for the diverged trial to
        # be finished: its end does not wait for theirs.
        if epoch == 1:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not seen:
                seen.extend(
                    t.status for t in service.list_trials(sweep.id, status="diverged") if t.params["lr"] == 1000.0
                )
                time.sleep(0.05)

    recorder = Recorder(hook=look)
    agent = agent_for(service, sweep.id, recorder, fuse=3)
    assert agent.run() == 3

    assert recorder.fused_groups == [3]
    assert seen == ["diverged"]
    trials = trials_by_lr(service, sweep.id)
    assert trials[1000.0].status == "diverged"
    assert trials[1000.0].metrics["stop_reason"] in ("diverged", "nan")
    assert trials[1000.0].metrics["epochs_run"] == 1
    assert trials[1000.0].curve == ()
    for lr in (0.05, 0.02):
        assert trials[lr].status == "completed"
        assert len(trials[lr].curve) == 4
    assert sorted(agent.outcomes) == sorted([Outcome.COMPLETED, Outcome.DIVERGED, Outcome.COMPLETED])


class CountingClient(ServiceClient):
    """The real client, noting how many trials each finish request ended."""

    def __init__(self, http: Any) -> None:
        super().__init__(http)
        self.finishes: list[tuple[str, int]] = []

    def finish(self, trial_id: int, **kwargs: Any) -> Trial:
        self.finishes.append(("finish", 1))
        return super().finish(trial_id, **kwargs)

    def finish_and_claim(self, endings: Sequence[Ending], **kwargs: Any) -> tuple[list[Any], list[Any]]:
        if endings:
            self.finishes.append(("finish+claim", len(endings)))
        return super().finish_and_claim(endings, **kwargs)


def test_the_members_that_complete_are_finished_together_by_the_next_claim(client: Any) -> None:
    service = CountingClient(client)
    sweep = submit(service, lrs=[0.05, 1000.0, 0.02, 0.01], epochs=3)
    agent = agent_for(service, sweep.id, Recorder(), fuse=4)
    assert agent.run() == 4
    # The diverged member was told at once, alone; the three that completed, in one request.
    assert service.finishes == [("finish", 1), ("finish+claim", 3)]
    assert sorted(agent.outcomes) == sorted([Outcome.DIVERGED] + [Outcome.COMPLETED] * 3)
    trials = trials_by_lr(service, sweep.id)
    for lr in (0.05, 0.02, 0.01):
        assert trials[lr].status == "completed"
        assert [p.step for p in trials[lr].curve] == [1, 2, 3]
    assert service.get_sweep(sweep.id).status == "completed"


def test_cancelling_the_sweep_stops_every_member(service: ServiceClient) -> None:
    epochs = 40
    sweep = submit(service, lrs=[0.1, 0.05, 0.01], epochs=epochs, trainer={**TINY_TRAINER, "dataset": "digits"})

    def cancel(epoch: int) -> None:
        if epoch == 1:
            service.cancel_sweep(sweep.id)

    agent = agent_for(service, sweep.id, Recorder(hook=cancel), fuse=3, report_every=0)
    assert agent.run() == 3

    for trial in trials_by_lr(service, sweep.id).values():
        assert trial.status == "cancelled"
        assert trial.metrics["stop_reason"] == "stopped"
        assert 1 <= trial.metrics["epochs_run"] < epochs


def test_a_lost_lease_drops_only_that_member(service: ServiceClient) -> None:
    sweep = submit(service, lrs=[0.03, 0.02, 0.01], epochs=30, trainer={**TINY_TRAINER, "dataset": "digits"})
    trials = service.claim(worker_id="fused-worker", sweep_id=sweep.id, count=3)
    lost = trials[0]

    def lease_moves_on(epoch: int) -> None:
        if epoch == 1:
            # What the server does when the lease lapses: the token stops being current.
            service.release(lost.id, lease_token=lost.lease_token)

    agent = agent_for(service, sweep.id, Recorder(hook=lease_moves_on), fuse=3, report_every=0)
    outcomes = agent.run_group(trials)

    assert outcomes == [Outcome.LEASE_LOST, Outcome.COMPLETED, Outcome.COMPLETED]
    after = service.get_trial(lost.id)
    assert after.status == "queued" and after.curve == () and after.metrics == {}
    for trial in trials[1:]:
        finished = service.get_trial(trial.id)
        assert finished.status == "completed"
        assert len(finished.curve) == 30


def test_a_stop_request_releases_every_member_for_another_worker(service: ServiceClient) -> None:
    sweep = submit(service, lrs=[0.1, 0.05, 0.01], epochs=20)
    agent: Agent

    def shutdown(epoch: int) -> None:
        if epoch == 1:
            agent.request_stop()  # what the SIGTERM handler does

    agent = agent_for(service, sweep.id, Recorder(hook=shutdown), fuse=3)
    assert agent.run() == 3
    assert agent.outcomes == [Outcome.RELEASED] * 3
    for trial in service.list_trials(sweep.id):
        assert trial.status == "queued"
        assert trial.attempt == 2

    successor = agent_for(service, sweep.id, Recorder(), fuse=3)
    assert successor.run() == 3
    assert service.get_sweep(sweep.id).counts == {"completed": 3}


def test_a_fused_training_error_fails_every_member(service: ServiceClient, tmp_path: Any) -> None:
    sweep = submit(service, lrs=[0.1, 0.01], epochs=1, trainer={**TINY_TRAINER, "dataset": "npz:missing.npz"})
    agent = agent_for(service, sweep.id, Recorder(), fuse=2, data_dir=str(tmp_path))
    assert agent.run() == 2

    assert agent.outcomes == [Outcome.FAILED] * 2
    for trial in service.list_trials(sweep.id):
        assert trial.status == "failed"
        assert "missing.npz" in trial.error


def test_trials_that_cannot_be_fused_train_one_by_one(service: ServiceClient) -> None:
    sweep = service.submit_sweep(
        sweep_doc(
            space={"hidden": {"type": "categorical", "values": [8, 16, 24]}},
            search={"kind": "grid"},
            stages=[{"trials": 3, "epochs": 1}],
            trainer=TINY_TRAINER,
        )
    )
    recorder = Recorder()
    agent = agent_for(service, sweep.id, recorder, fuse=8)
    assert agent.run() == 3

    assert recorder.fused_groups == [] and recorder.alone == 3
    assert service.get_sweep(sweep.id).counts == {"completed": 3}
