"""Pruning in the pull loop, against the real app: a pruned trial stops at the epoch it was
pruned at, alone or as a member of a fused group, which the others train on without."""

from __future__ import annotations

from typing import Any

import pytest

from hypersweep.worker.agent import Outcome
from hypersweep.worker.client import ServiceClient
from tests.worker.test_fused import TINY_TRAINER, Recorder, agent_for, one_thread, submit, trials_by_lr

__all__ = ["one_thread"]

ASHA = {"kind": "asha", "min_epochs": 1, "eta": 3}


@pytest.fixture
def service(client: Any) -> ServiceClient:
    return ServiceClient(client)


@pytest.mark.parametrize("fuse", [1, 3])
def test_pruned_trials_stop_at_their_rung_and_the_rest_train_on(service: ServiceClient, fuse: int) -> None:
    lrs = [0.05, 1e-4, 3e-5]  # the grid runs them as 3e-5, 0.05, 1e-4
    sweep = submit(
        service,
        lrs=lrs,
        epochs=4,
        stages=[{"trials": 3, "epochs": 4, "pruner": ASHA}],
        trainer={**TINY_TRAINER, "dataset": "digits"},
    )
    recorder = Recorder()
    agent = agent_for(service, sweep.id, recorder, fuse=fuse, report_every=5.0)
    assert agent.run() == 3
    assert recorder.fused_groups == ([3] if fuse == 3 else [])
    trials = trials_by_lr(service, sweep.id)
    pruned = [t for t in trials.values() if t.status == "pruned"]
    assert pruned and Outcome.PRUNED in agent.outcomes
    for trial in pruned:
        # The report at a rung is answered before the next epoch starts, even with reports
        # otherwise sent every 5 s: the trial trains no epoch past its rung.
        at = trial.metrics["pruned_at"]
        assert at in (1, 3) and trial.metrics["epochs_run"] == at
        assert [p.step for p in trial.curve] == list(range(1, at + 1))
        assert "val_accuracy" in trial.metrics["prune_reason"] and trial.metrics["stop_reason"] == "pruned"
    assert trials[0.05].status == "completed" and len(trials[0.05].curve) == 4
    assert service.get_sweep(sweep.id).status == "completed"
