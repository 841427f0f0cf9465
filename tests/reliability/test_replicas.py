"""Two ``hypersweep serve`` processes on one PostgreSQL database, with workers spread over
both: what each server keeps in memory (its claim lines, its designers, its cached sweep
facts) must never be needed for correctness.

Grid, random, Bayesian and two-stage sweeps run at once. Some trials are claimed through
one server by a worker that then goes silent, so their leases run out while both servers'
reapers and claims look for expired leases. Every trial must be finished once, every
budget be exact, no grid point run twice, every stage start once, and every lapsed lease
be expired once.

The workers are :mod:`tests.reliability.agent` processes (the real pull loop, training
replaced by an immediate result), three on each server, serving every sweep.
"""

from __future__ import annotations

import signal
from collections import Counter
from typing import Any

import pytest

from tests.e2e.conftest import Processes, wait_until
from tests.reliability.conftest import SERVER_ERROR, Service, on_backend

pytestmark = pytest.mark.e2e

#: Long enough that a busy machine does not let a live agent's lease lapse; the silent
#: worker's leases lapse after it.
LEASE_SECONDS = 8
AGENTS_PER_SERVER = 3
#: Trials claimed by the silent worker, per sweep.
ABANDONED = 2
LR = {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"}
DROPOUT = {"type": "float", "low": 0.0, "high": 0.5}


def sweep(name: str, search: dict[str, Any], stages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "objective": {"metric": "val_accuracy", "mode": "max"},
        "space": {"lr": LR, "dropout": DROPOUT},
        "search": search,
        "stages": stages,
        "trainer": {"dataset": "digits"},
        "parallelism": 6,
        "max_attempts": 5,
    }


SWEEPS = [
    # Two grid stages: the second narrows around the first's best and grids again.
    sweep(
        "grid",
        {"kind": "grid", "grid_points": 5},
        [
            {"trials": 25, "epochs": 1},
            {"trials": 16, "epochs": 1, "top_k": 3, "search": {"kind": "grid", "grid_points": 4}},
        ],
    ),
    sweep("random", {"kind": "random", "seed": 3}, [{"trials": 40, "epochs": 2}]),
    sweep("bayes", {"kind": "bayes", "sampler": "tpe", "seed": 4}, [{"trials": 24, "epochs": 1}]),
    sweep(
        "two-stage",
        {"kind": "random", "seed": 5},
        [{"trials": 20, "epochs": 1}, {"trials": 12, "epochs": 2, "top_k": 4, "search": {"kind": "bayes"}}],
    ),
]


def inside(params: dict[str, Any], space: dict[str, Any]) -> bool:
    """Whether each value lies in its axis's bounds (up to rounding: log axes are gridded
    and sampled in log space)."""
    slack = 1e-9
    return all(
        space[name]["low"] * (1 - slack) - slack <= value <= space[name]["high"] * (1 + slack) + slack
        for name, value in params.items()
    )


@on_backend("postgresql")
def test_two_servers_on_one_database_run_every_trial_once(processes: Processes, database_url: str) -> None:
    env = {"HYPERSWEEP_LEASE_SECONDS": str(LEASE_SECONDS)}
    servers = [Service(processes, database_url, env=env, name=f"server-{n}") for n in "ab"]
    for server in servers:
        server.start()
    first, second = servers
    try:
        # Submitted through either server: both write the same tables.
        ids = [servers[n % 2].client.submit_sweep(doc).id for n, doc in enumerate(SWEEPS)]
        # A worker that claims through the second server and never speaks again.
        abandoned = {t.id for i in ids for t in second.client.claim(worker_id="silent", sweep_id=i, count=ABANDONED)}
        assert len(abandoned) == ABANDONED * len(SWEEPS)
        agents = [
            server.start_agent(f"agent-{n}-{k}", None)
            for n, server in enumerate(servers)
            for k in range(AGENTS_PER_SERVER)
        ]

        def all_over() -> bool:
            return all(first.client.get_sweep(i).status != "running" for i in ids)

        wait_until(all_over, what="every sweep to end", timeout=240)
        for agent in agents:
            agent.send_signal(signal.SIGTERM)
        for agent in agents:
            assert first.wait_for_exit(agent, timeout=60) == 0, processes.logs()

        total_attempts = 0
        for doc, sweep_id in zip(SWEEPS, ids, strict=True):
            done = second.client.get_sweep(sweep_id)
            budgets = [stage["trials"] for stage in doc["stages"]]
            assert done.status == "completed", (doc["name"], done)
            trials = first.trials(sweep_id)
            total_attempts += sum(t.attempt for t in trials)
            # Every trial once, budgets exact, numbers without gaps.
            assert Counter(t.status for t in trials) == {"completed": sum(budgets)}, doc["name"]
            assert [s.trials for s in done.stages] == budgets
            assert [s.counts for s in done.stages] == [{"completed": n} for n in budgets]
            assert sorted(t.number for t in trials) == list(range(sum(budgets)))
            # Each result came from the worker that held the trial last.
            assert all(t.metrics["worker"] == t.worker_id for t in trials)
            for stage in done.stages:
                in_stage = [t for t in trials if t.stage == stage.index]
                assert len(in_stage) == stage.trials
                # Each stage started once, with one space, and its trials come from it.
                assert stage.started_at is not None and stage.finished_at is not None
                assert stage.space is not None
                assert all(inside(t.params, stage.space) for t in in_stage), (doc["name"], stage.index)
                if stage.search["kind"] == "grid":
                    points = [tuple(sorted(t.params.items())) for t in in_stage]
                    assert len(points) == len(set(points)), f"{doc['name']}: a grid point ran twice"
            if len(done.stages) > 1:
                assert done.stages[0].finished_at <= done.stages[1].started_at
                # A stage change appends its warnings once: the same sentence twice means
                # two servers both moved the sweep on.
                assert len(done.warnings) == len(set(done.warnings)), done.warnings
            # The silent worker's trials: expired once each, then run by an agent.
            for trial in trials:
                if trial.id in abandoned:
                    assert trial.attempt == 2, trial
                    assert trial.worker_id != "silent"
        # Handed out once per attempt, summed over both servers; finished once each.
        assert sum(s.counter("hypersweep_trials_claimed_total") for s in servers) == total_attempts
        finished = sum(s.counter("hypersweep_trials_finished_total") for s in servers)
        assert finished == sum(sum(stage["trials"] for stage in doc["stages"]) for doc in SWEEPS)
        # Both servers served work.
        assert all(s.counter("hypersweep_trials_claimed_total") > 0 for s in servers)
        log = first.log() + second.log()
        assert not SERVER_ERROR.search(log), SERVER_ERROR.findall(log)[:5]
        assert "Traceback" not in log
    finally:
        for server in servers:
            server.client.close()
