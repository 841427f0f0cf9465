"""Sweeps run end to end: a real server, real worker processes, the real trainer."""

from __future__ import annotations

import math
import signal
from typing import Any

import httpx
import pytest

from hypersweep.worker.client import ServiceClient
from hypersweep.worker.wire import Trial
from tests.e2e.conftest import Server, wait_until

pytestmark = pytest.mark.e2e


def grid_sweep(name: str, lrs: tuple[float, float], points: int, **trainer: Any) -> dict[str, Any]:
    low, high = lrs
    return {
        "name": name,
        "objective": {"metric": "val_accuracy", "mode": "max"},
        "space": {"lr": {"type": "float", "low": low, "high": high, "scale": "log"}},
        "search": {"kind": "grid", "grid_points": points},
        "stages": [{"epochs": trainer.pop("epochs")}],
        "trainer": {"dataset": "digits", **trainer},
        "parallelism": 8,
    }


def all_trials(client: ServiceClient, sweep_id: int) -> list[Trial]:
    return [client.get_trial(t.id) for t in client.list_trials(sweep_id, limit=1000)]


def counter(server: Server, name: str) -> float:
    """The sum of a Prometheus counter over its labels, read from /metrics."""
    text = server.client.http.get("/metrics").raise_for_status().text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name) and line[len(name)] in "{ "
    )


def test_a_sweep_runs_to_completion_with_every_trial_finished_once(server: Server) -> None:
    client = server.client
    sweep = client.submit_sweep(grid_sweep("e2e-basic", (1e-2, 1e-1), 4, dataset="spiral", epochs=3, batch_size=32))
    # Without the token the server refuses; the workers get it from HYPERSWEEP_TOKEN.
    assert httpx.get(f"{server.url}/api/v1/sweeps").status_code == 401

    worker = server.start_worker("--sweep", str(sweep.id), "--concurrency", "2")
    assert server.wait_for_exit(worker) == 0, server.processes.logs()

    done = client.get_sweep(sweep.id)
    assert done.status == "completed"
    assert done.best is not None
    trials = all_trials(client, sweep.id)
    assert len(trials) == 4
    for trial in trials:
        assert trial.status == "completed"
        assert trial.attempt == 1
        assert [point.step for point in trial.curve] == [1, 2, 3]
        assert trial.worker_id.rsplit("-", 1)[1] in ("0", "1")
    assert sorted(t.params["lr"] for t in trials) == sorted({t.params["lr"] for t in trials})
    # Each trial was handed out once and finished once.
    assert counter(server, "hypersweep_trials_claimed_total") == 4
    assert counter(server, "hypersweep_trials_finished_total") == 4


def test_a_learning_rate_grid_finds_a_good_rate_and_stops_the_exploding_ones(
    server: Server,
) -> None:
    """The product's acceptance scenario, small: lr from 1e-3 to 100 on a log grid,
    digits, two workers."""
    client = server.client
    epochs = 10
    sweep = client.submit_sweep(
        grid_sweep(
            "e2e-lr-grid",
            (1e-3, 100.0),
            6,
            epochs=epochs,
            batch_size=32,
            optimizer="sgd",
            seed=1,
        )
    )
    workers = [server.start_worker("--sweep", str(sweep.id), name=f"worker-{index}") for index in range(2)]
    for worker in workers:
        assert server.wait_for_exit(worker, timeout=90) == 0, server.processes.logs()

    done = client.get_sweep(sweep.id)
    assert done.status == "completed"
    trials = {trial.params["lr"]: trial for trial in all_trials(client, sweep.id)}
    assert sorted(trials) == pytest.approx([1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0])

    for lr, trial in trials.items():
        if lr >= 10.0:
            assert trial.status == "diverged", trial
            assert trial.metrics["epochs_run"] == 1
            assert trial.metrics["stop_reason"] in ("diverged", "nan")
            assert len(trial.curve) < epochs
    best = done.best
    assert best is not None
    assert best.status == "completed"
    assert best.metrics["val_accuracy"] > 0.95
    assert best.metrics["val_accuracy"] == max(
        t.metrics["val_accuracy"] for t in trials.values() if t.status == "completed"
    )
    assert math.isfinite(best.metrics["test_accuracy"])
    assert len({trial.worker_id for trial in trials.values()}) <= 2


def test_sigterm_hands_running_trials_back_and_the_sweep_still_completes(
    server: Server,
) -> None:
    client = server.client
    # Small batches make epochs long enough (tens of milliseconds each) that the signal
    # lands well inside the trials, with most of their epochs still ahead.
    epochs = 30
    sweep = client.submit_sweep(grid_sweep("e2e-sigterm", (1e-2, 1e-1), 2, epochs=epochs, batch_size=8))
    # Every epoch reported as it ends, so that both trials are seen mid-way.
    worker = server.start_worker("--sweep", str(sweep.id), "--concurrency", "2", "--report-every", "0")

    def both_trials_reported() -> bool:
        trials = client.list_trials(sweep.id, status="running")
        return len(trials) == 2 and all(client.get_trial(t.id).curve for t in trials)

    wait_until(both_trials_reported, what="two running trials with a reported epoch")
    worker.send_signal(signal.SIGTERM)
    assert server.wait_for_exit(worker) == 0, server.processes.logs()

    # Queued again at once: the 60 s lease has not run out, so this was the release.
    for trial in client.list_trials(sweep.id):
        assert trial.status == "queued", server.processes.logs()
        assert trial.attempt == 2
        assert trial.worker_id is None

    successor = server.start_worker("--sweep", str(sweep.id), "--concurrency", "2", name="successor")
    assert server.wait_for_exit(successor, timeout=90) == 0, server.processes.logs()
    done = client.get_sweep(sweep.id)
    assert done.status == "completed"
    assert done.best is not None
    for trial in all_trials(client, sweep.id):
        assert trial.status == "completed"
        assert trial.attempt == 2
        assert len(trial.curve) == epochs


def test_a_worker_refused_by_the_server_exits_with_the_reason(server: Server) -> None:
    sweep = server.client.submit_sweep(grid_sweep("e2e-refused", (1e-2, 1e-1), 2, epochs=1))
    wrong_token = server.start_worker("--sweep", str(sweep.id), "--token", "wrong", name="wrong-token")
    no_such_sweep = server.start_worker("--sweep", "999", name="no-such-sweep")

    assert server.wait_for_exit(wrong_token) == 1
    assert server.wait_for_exit(no_such_sweep) == 1
    logs = server.processes.logs()
    assert "401" in logs
    assert "404" in logs
    assert server.client.get_sweep(sweep.id).counts == {}
