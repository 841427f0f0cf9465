"""Checkpoint folders and idle exits in the pull loop, against the real app and the real
trainer: a trial given back mid-way resumes on the next agent; a fused claim resumes the
trial that has a checkpoint on its own; an agent with ``exit_when_idle`` returns once the
queue is dry."""

from __future__ import annotations

from pathlib import Path

import pytest

from hypersweep.trainer.checkpoint import CHECKPOINT_FILE
from hypersweep.worker.agent import Agent, IdleBackoff, Outcome
from hypersweep.worker.checkpoints import check_checkpoint_root, checkpoint_dir
from hypersweep.worker.client import ServiceClient
from tests.worker.test_agent import agent_for, submit, train_with
from tests.worker.test_agent import service as service  # the agent tests' fixture


def test_the_root_is_made_when_missing_and_refused_when_it_cannot_be_a_folder(tmp_path: Path) -> None:
    made = check_checkpoint_root(str(tmp_path / "a" / "b"))
    assert Path(made).is_dir() and Path(made).is_absolute()
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="HYPERSWEEP_CHECKPOINT_ROOT"):
        check_checkpoint_root(str(tmp_path / "file" / "below"))
    assert checkpoint_dir(tmp_path, 3, 17) == tmp_path / "3" / "17"
    assert (tmp_path / "3" / "17").is_dir()


def test_a_trial_given_back_mid_way_resumes_from_its_checkpoint_on_the_next_agent(
    service: ServiceClient, tmp_path: Path
) -> None:
    sweep = submit(service, trials=1, epochs=4)
    first = agent_for(service, sweep.id, checkpoint_root=str(tmp_path))

    def shut_down(epoch: int) -> None:
        if epoch == 2:
            first.request_stop()  # as SIGTERM does: this epoch ends, then the trial goes back

    first.train_fn = train_with(shut_down)
    first.run()
    assert first.outcomes == [Outcome.RELEASED]
    [trial] = service.list_trials(sweep.id)
    assert (trial.status, trial.attempt) == ("queued", 2)
    assert (tmp_path / str(sweep.id) / str(trial.id) / CHECKPOINT_FILE).exists()

    second = agent_for(service, sweep.id, checkpoint_root=str(tmp_path))
    assert second.run() == 1
    done = service.get_trial(trial.id)
    assert done.status == "completed"
    assert done.metrics["resumed_from_epoch"] == 2
    assert done.metrics["epochs_run"] == 4
    assert [point.step for point in done.curve or ()] == [1, 2, 3, 4]


def test_a_fused_claim_resumes_the_trial_with_a_checkpoint_alone_and_saves_none_for_the_group(
    service: ServiceClient, tmp_path: Path
) -> None:
    sweep = submit(service, trials=3, epochs=3)
    first = agent_for(service, sweep.id, checkpoint_root=str(tmp_path), once=True)

    def shut_down(epoch: int) -> None:
        if epoch == 1:
            first.request_stop()

    first.train_fn = train_with(shut_down)
    first.run()
    [given_back] = [t for t in service.list_trials(sweep.id) if t.attempt == 2]

    fused = agent_for(service, sweep.id, checkpoint_root=str(tmp_path), fuse=3)
    assert fused.run() == 3
    trials = {t.id: service.get_trial(t.id) for t in service.list_trials(sweep.id)}
    assert all(t.status == "completed" for t in trials.values())
    assert trials[given_back.id].metrics["resumed_from_epoch"] == 1
    for trial_id, trial in trials.items():
        if trial_id != given_back.id:
            # Trained as one fused group: from epoch 1, and nothing saved.
            assert "resumed_from_epoch" not in trial.metrics
            assert not (tmp_path / str(sweep.id) / str(trial_id) / CHECKPOINT_FILE).exists()


def test_an_agent_with_exit_when_idle_returns_once_nothing_is_handed_out(service: ServiceClient) -> None:
    sweep = submit(service, trials=2, epochs=1)
    agent = Agent(
        service, worker_id="batch", backoff=IdleBackoff(base=0.01, cap=0.05), exit_when_idle=0.3
    )  # every sweep: without the idle exit it would wait forever
    assert agent.run() == 2
    assert service.get_sweep(sweep.id).status == "completed"
    idle = Agent(service, worker_id="late", exit_when_idle=0.0)
    assert idle.run() == 0
