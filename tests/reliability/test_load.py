"""Many worker processes on one sweep of 2,000 short trials: every trial is finished
exactly once, the budget is exact, no grid point runs twice, and the server never answers
5xx nor reports "database is locked".

The workers are :mod:`tests.reliability.agent` processes: the real ``worker.agent.Agent``
pull loop on a real ``ServiceClient`` against a real ``hypersweep serve``, with training
replaced by an immediate result (one epoch, no sleep), because 32 processes that each
import PyTorch do not fit a small CI machine. 32 of them run on PostgreSQL, 8 on SQLite.
Leases are short (2 s), so on a busy machine some lapse mid-trial: the late holder's
report and finish are refused, and the rerun is the one result that counts.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.reliability.conftest import SERVER_ERROR, Service

pytestmark = pytest.mark.e2e

TRIALS = (1600, 400)
WORKERS = {"postgresql": 32, "sqlite": 8}


def load_sweep(parallelism: int) -> dict[str, Any]:
    axis = {"type": "float", "low": 0.0, "high": 0.5}
    return {
        "name": "load",
        "objective": {"metric": "val_accuracy", "mode": "max"},
        "space": {
            "lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
            "dropout": axis,
            "momentum": axis,
        },
        "search": {"kind": "grid", "grid_points": 13},
        "stages": [
            {"trials": TRIALS[0], "epochs": 1},
            {"trials": TRIALS[1], "epochs": 1, "top_k": 5, "search": {"kind": "grid", "grid_points": 8}},
        ],
        "trainer": {"dataset": "digits"},
        "parallelism": parallelism,
        # With a 2 s lease on a loaded machine, some leases lapse and their trials run
        # again; enough attempts that none ends up failed for it.
        "max_attempts": 20,
    }


def test_every_trial_is_finished_exactly_once_under_many_workers(service: Service, backend: str) -> None:
    workers = WORKERS[backend]
    sweep = service.client.submit_sweep(load_sweep(parallelism=workers))
    agents = [service.start_agent(f"agent-{i}", sweep.id) for i in range(workers)]
    for agent in agents:
        assert service.wait_for_exit(agent, timeout=240) == 0, service.processes.logs()

    done = service.client.get_sweep(sweep.id)
    assert done.status == "completed"
    trials = service.trials(sweep.id)
    assert len(trials) == sum(TRIALS)
    assert Counter(t.status for t in trials) == {"completed": sum(TRIALS)}
    assert [s.trials for s in done.stages] == list(TRIALS)
    assert [s.counts for s in done.stages] == [{"completed": n} for n in TRIALS]
    assert sorted(t.number for t in trials) == list(range(sum(TRIALS)))
    for stage in (0, 1):
        points = [tuple(sorted(t.params.items())) for t in trials if t.stage == stage]
        assert len(points) == len(set(points)), f"a grid point ran twice in stage {stage}"
    # Each trial's result came from the worker that held it last.
    assert all(t.metrics["worker"] == t.worker_id for t in trials)
    # Handed out once per attempt, finished once each.
    attempts = sum(t.attempt for t in trials)
    assert service.counter("hypersweep_trials_claimed_total") == attempts
    assert service.counter("hypersweep_trials_finished_total") == sum(TRIALS)
    assert done.best.value == max(t.value for t in trials)

    log = service.log()
    assert not SERVER_ERROR.search(log), SERVER_ERROR.findall(log)[:5]
    assert "database is locked" not in log
    assert "Traceback" not in log
    assert "ERROR" not in "".join(
        path.read_text() for name, _, path in service.processes.started if name.startswith("agent-")
    )
