"""Preemption without lost work: the real ``hypersweep worker`` with a checkpoint root,
killed with SIGKILL mid-trial; the trial's next attempt, on another worker, goes on from
the epoch its checkpoint holds."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from hypersweep.trainer.checkpoint import CHECKPOINT_FILE
from tests.e2e.conftest import hypersweep_command, wait_until
from tests.reliability.conftest import Service, on_backend

pytestmark = pytest.mark.e2e

#: Many short epochs: the worker is killed early in the trial, whatever the machine's speed.
EPOCHS = 150


def saved_epoch(path: Path) -> int:
    """The epoch of the checkpoint at ``path``; 0 while there is none (it is replaced whole)."""
    if not path.exists():
        return 0
    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])


@on_backend("sqlite")
def test_a_killed_workers_trial_resumes_from_its_checkpoint_on_the_next_worker(
    service: Service, tmp_path: Path
) -> None:
    root = tmp_path / "checkpoints"
    sweep = service.client.submit_sweep(
        {
            "name": "preempted",
            "space": {"lr": {"type": "float", "low": 1e-2, "high": 2e-2, "scale": "log"}},
            "search": {"kind": "random", "seed": 0},
            "stages": [{"trials": 1, "epochs": EPOCHS}],
            "trainer": {"dataset": "spiral", "batch_size": 32, "hidden": 32, "optimizer": "momentum", "dropout": 0.2},
        }
    )
    victim = service.start_worker("victim", "--sweep", str(sweep.id), "--checkpoint-root", str(root))
    wait_until(lambda: bool(service.client.list_trials(sweep.id, status="running")), what="the trial to start")
    [trial] = service.client.list_trials(sweep.id)
    checkpoint = root / str(sweep.id) / str(trial.id) / CHECKPOINT_FILE
    wait_until(lambda: saved_epoch(checkpoint) >= 2, what="a checkpoint of epoch 2")
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    resumed_from = saved_epoch(checkpoint)
    assert 2 <= resumed_from < EPOCHS, "the victim finished before it was killed"

    def requeued() -> bool:
        again = service.client.get_trial(trial.id)
        return bool(again.status == "queued" and again.attempt == 2)

    wait_until(requeued, what="the killed worker's trial to be queued again")
    # The root from the environment this time, as a cluster's pod spec would set it.
    env = {"HYPERSWEEP_SERVER": service.url, "HYPERSWEEP_TOKEN": service.token, "HYPERSWEEP_CHECKPOINT_ROOT": str(root)}
    args = [*hypersweep_command(), "worker", "--worker-id", "successor", "--sweep", str(sweep.id)]
    successor = service.processes.start("successor", args, env)
    assert service.wait_for_exit(successor, timeout=180) == 0, service.processes.logs()

    done = service.client.get_trial(trial.id)
    assert (done.status, done.attempt, done.worker_id) == ("completed", 2, "successor"), done
    assert done.metrics["resumed_from_epoch"] == resumed_from
    assert done.metrics["epochs_run"] == EPOCHS
    # The curve is whole: the checkpoint's epochs told again, then the ones trained after.
    assert [point.step for point in done.curve or ()] == list(range(1, EPOCHS + 1))
    assert saved_epoch(checkpoint) == EPOCHS
    assert f"resuming after epoch {resumed_from}" in service.processes.logs()
