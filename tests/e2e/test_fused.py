"""``hypersweep worker --fuse K`` end to end: a real server, a real worker process."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Server
from tests.e2e.test_workers import all_trials, counter, grid_sweep

pytestmark = pytest.mark.e2e


def test_a_fused_worker_trains_a_sweep_as_one_group_with_per_trial_results(server: Server) -> None:
    client = server.client
    epochs = 3
    # Six sane learning rates and two that explode in the first epoch.
    lrs = [1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 100.0, 1e6]
    doc = grid_sweep("e2e-fused", (1e-3, 1.0), 8, epochs=epochs, batch_size=32, optimizer="sgd", dropout=0.1)
    doc["space"] = {"lr": {"type": "categorical", "values": lrs}}
    sweep = client.submit_sweep(doc)

    worker = server.start_worker("--sweep", str(sweep.id), "--fuse", "8")
    assert server.wait_for_exit(worker, timeout=120) == 0, server.processes.logs()

    done = client.get_sweep(sweep.id)
    assert done.status == "completed"
    trials = {trial.params["lr"]: trial for trial in all_trials(client, sweep.id)}
    assert len(trials) == 8
    for lr, trial in trials.items():
        assert trial.attempt == 1
        if lr >= 100.0:
            assert trial.status == "diverged", trial
            assert trial.metrics["stop_reason"] in ("diverged", "nan")
            assert trial.metrics["epochs_run"] == 1
            assert trial.curve == ()
        else:
            assert trial.status == "completed", trial
            assert [point.step for point in trial.curve] == [1, 2, 3]
            assert trial.metrics["stop_reason"] == "completed"
    # Each trial has its own curve: no two completed trials report the same losses.
    last_losses = [t.curve[-1].metrics["train_loss"] for t in trials.values() if t.status == "completed"]
    assert len(set(last_losses)) == len(last_losses)
    assert done.best.metrics["val_accuracy"] > 0.9
    # One claim handed out all eight, and the worker trained them as one fused group.
    assert counter(server, "hypersweep_trials_claimed_total") == 8
    assert counter(server, "hypersweep_trials_finished_total") == 8
    assert "training 8 trials fused" in server.processes.logs()
