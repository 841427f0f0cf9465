"""Faults with real processes: a worker killed or paused past its lease, the server killed
and restarted on the same database, PostgreSQL restarted under a running sweep.

A worker stopped with SIGTERM hands its trial back at once, before its lease runs out:
``tests/e2e/test_workers.py::test_sigterm_hands_running_trials_back_and_the_sweep_still_completes``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections import Counter
from typing import Any

import pytest

from hypersweep.worker.wire import Trial
from tests.e2e.conftest import wait_until
from tests.reliability.conftest import SERVER_ERROR, Service, on_backend

pytestmark = pytest.mark.e2e


def random_sweep(name: str, trials: tuple[int, ...], *, epochs: int, parallelism: int = 8) -> dict[str, Any]:
    stages: list[dict[str, Any]] = [{"trials": trials[0], "epochs": epochs}]
    stages += [{"trials": n, "epochs": epochs, "top_k": 3} for n in trials[1:]]
    return {
        "name": name,
        "objective": {"metric": "val_accuracy", "mode": "max"},
        "space": {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"}},
        "search": {"kind": "random", "seed": 1},
        "stages": stages,
        "trainer": {"dataset": "spiral"},
        "parallelism": parallelism,
    }


def finished(service: Service, sweep_id: int) -> dict[int, Trial]:
    """The sweep's finished trials by id, as the API shows them now."""
    return {t.id: t for t in service.trials(sweep_id) if t.finished_at is not None}


def assert_completed_once_each(service: Service, sweep_id: int, total: int) -> list[Trial]:
    done = service.client.get_sweep(sweep_id)
    assert done.status == "completed", done
    trials = service.trials(sweep_id)
    assert len(trials) == total
    assert Counter(t.status for t in trials) == {"completed": total}, Counter(t.status for t in trials)
    for trial in trials:
        # The result is the one its last holder produced, not a mix of two attempts.
        assert trial.metrics["worker"] == trial.worker_id, trial
    return trials


@on_backend("sqlite")
def test_a_killed_worker_s_trial_is_requeued_when_its_lease_expires_and_finished_by_another(service: Service) -> None:
    """The real ``hypersweep worker`` with the real trainer, killed with SIGKILL mid-trial.
    (The lease logic is the same on both backends; the server-crash test runs on both.)"""
    epochs = 8
    sweep = service.client.submit_sweep(
        {
            "name": "sigkill",
            "space": {"lr": {"type": "float", "low": 1e-2, "high": 1e-1, "scale": "log"}},
            "search": {"kind": "grid", "grid_points": 2},
            "stages": [{"epochs": epochs}],
            "trainer": {"dataset": "spiral", "batch_size": 32},
        }
    )
    # Every epoch reported as it ends, so that the victim is seen mid-trial.
    victim = service.start_worker("victim", "--sweep", str(sweep.id), "--report-every", "0")

    def running_with_a_reported_epoch() -> bool:
        running = service.client.list_trials(sweep.id, status="running")
        return bool(running) and bool(service.client.get_trial(running[0].id).curve)

    wait_until(running_with_a_reported_epoch, what="a running trial with a reported epoch")
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    [killed] = [t for t in service.trials(sweep.id) if t.worker_id == "victim" and t.status == "running"]
    assert service.client.get_trial(killed.id).curve

    def requeued() -> bool:
        trial = service.client.get_trial(killed.id)
        return bool(trial.status == "queued" and trial.attempt == 2)

    wait_until(requeued, what="the killed worker's trial to be queued again")
    successor = service.start_worker("successor", "--sweep", str(sweep.id))
    assert service.wait_for_exit(successor, timeout=180) == 0, service.processes.logs()

    done = service.client.get_sweep(sweep.id)
    assert done.status == "completed"
    trials = {t.id: service.client.get_trial(t.id) for t in service.trials(sweep.id)}
    assert len(trials) == 2
    assert all(t.status == "completed" for t in trials.values())
    rerun = trials[killed.id]
    assert (rerun.attempt, rerun.worker_id) == (2, "successor")
    # The dead attempt's curve is gone: one point per epoch, all from the rerun.
    assert [p.step for p in rerun.curve] == list(range(1, epochs + 1))
    assert service.counter("hypersweep_trials_claimed_total") == 3
    assert service.counter("hypersweep_trials_finished_total") == 2


@on_backend("sqlite")
def test_a_paused_worker_s_late_reports_get_409_and_change_nothing(service: Service) -> None:
    """A network partition, simulated by SIGSTOP past the lease and SIGCONT after another
    holder has the trial."""
    sweep = service.client.submit_sweep(random_sweep("partition", (1,), epochs=40))
    paused = service.start_agent("paused", sweep.id, epoch_seconds=0.1)

    def reported() -> bool:
        running = service.client.list_trials(sweep.id, status="running")
        return bool(running) and bool(service.client.get_trial(running[0].id).curve)

    wait_until(reported, what="the agent's first report")
    os.killpg(paused.pid, signal.SIGSTOP)
    [trial] = service.trials(sweep.id)
    wait_until(lambda: service.client.get_trial(trial.id).status == "queued", what="the lease to expire")

    [mine] = service.client.claim(worker_id="successor", sweep_id=sweep.id)
    assert (mine.id, mine.attempt) == (trial.id, 2)
    token = mine.lease_token
    service.client.report(trial.id, lease_token=token, step=1, metrics={"worker": "successor", "val_accuracy": 0.5})
    before = service.client.get_trial(trial.id)

    os.killpg(paused.pid, signal.SIGCONT)
    log = service.processes.workdir / "paused.log"

    def lease_lost() -> bool:
        service.client.heartbeat(trial.id, lease_token=token)
        return "lease lost" in log.read_text()

    wait_until(lease_lost, what="the resumed agent to learn it lost the lease")
    late = re.findall(rf'"POST /api/v1/trials/{trial.id}/(\w+) HTTP/1.1" 409', service.log())
    assert late and set(late) <= {"report", "reports", "heartbeat"}, late
    assert service.client.get_trial(trial.id) == before

    service.client.finish(
        trial.id, lease_token=token, status="completed", metrics={"worker": "successor", "val_accuracy": 0.5}
    )
    assert service.wait_for_exit(paused) == 0, service.processes.logs()
    after = service.client.get_trial(trial.id)
    assert (after.status, after.worker_id, after.attempt) == ("completed", "successor", 2)
    assert [p.metrics["worker"] for p in after.curve] == ["successor"]
    assert "lease_lost" in log.read_text()


def test_the_server_killed_mid_sweep_restarts_on_the_same_database_with_every_result_kept(service: Service) -> None:
    total = (30, 10)
    sweep = service.client.submit_sweep(random_sweep("server-crash", total, epochs=3))
    agents = [service.start_agent(f"agent-{i}", sweep.id, epoch_seconds=0.1) for i in range(4)]
    wait_until(lambda: len(finished(service, sweep.id)) >= 8, what="eight finished trials")
    kept = finished(service, sweep.id)

    service.kill()
    service.start()

    for agent in agents:
        assert service.wait_for_exit(agent) == 0, service.processes.logs()
    trials = assert_completed_once_each(service, sweep.id, sum(total))
    now = {t.id: t for t in trials}
    for trial_id, trial in kept.items():
        assert now[trial_id] == trial, "a result finished before the crash changed"
    assert not SERVER_ERROR.search(service.log())


@on_backend("postgresql")
def test_workers_and_server_ride_out_a_postgresql_restart(service: Service) -> None:
    """PostgreSQL restarted (a few seconds down) while four workers run a sweep: the
    workers retry, the server's pool reconnects, and it is running again at the end."""
    ctl = shutil.which("pg_ctlcluster")
    if ctl is None or not os.path.isdir("/etc/postgresql") or os.geteuid() != 0:
        pytest.skip("needs a local PostgreSQL cluster managed by pg_ctlcluster, and root to restart it")
    cluster = [ctl, "--skip-systemctl-redirect", sorted(os.listdir("/etc/postgresql"))[0], "main"]

    total = (30, 10)
    sweep = service.client.submit_sweep(random_sweep("pg-restart", total, epochs=3))
    agents = [service.start_agent(f"agent-{i}", sweep.id, epoch_seconds=0.1) for i in range(4)]
    wait_until(lambda: len(finished(service, sweep.id)) >= 8, what="eight finished trials")
    kept = finished(service, sweep.id)
    try:
        subprocess.run([*cluster, "restart"], check=True, timeout=60, capture_output=True)
    finally:
        if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False).returncode != 0:
            subprocess.run([*cluster, "start"], check=False, timeout=60)
        wait_until(
            lambda: subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False).returncode == 0,
            what="PostgreSQL to accept connections again",
        )

    for agent in agents:
        assert service.wait_for_exit(agent) == 0, service.processes.logs()
    assert service.proc is not None and service.proc.poll() is None, "the server died"
    assert service.client.healthz()["database"] == "ok"
    trials = assert_completed_once_each(service, sweep.id, sum(total))
    now = {t.id: t for t in trials}
    for trial_id, trial in kept.items():
        assert now[trial_id] == trial, "a result finished before the restart changed"
