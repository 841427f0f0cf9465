"""Workers started for batch jobs (Slurm arrays, KEDA ScaledJobs): ``--exit-when-idle``
ends a real ``hypersweep worker`` with code 0 once nothing has been handed out to it for
that long, whether it runs slots side by side, fused groups or a program."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Server
from tests.e2e.test_programs import USER_CODE
from tests.e2e.test_programs import sweep as program_sweep
from tests.e2e.test_workers import grid_sweep

pytestmark = pytest.mark.e2e

EXITING = "no trial for 1 s: exiting"


def test_workers_with_exit_when_idle_run_the_queue_dry_then_exit_0(server: Server) -> None:
    (server.processes.workdir / "user_code.py").write_text(USER_CODE)
    builtin = server.client.submit_sweep(grid_sweep("idle", (1e-2, 1e-1), 6, epochs=2, dataset="spiral"))
    program = server.client.submit_sweep(program_sweep("idle-program", [0.01, 0.1], epochs=2))
    workers = [
        server.start_worker("--concurrency", "2", "--exit-when-idle", "1", name="slots"),
        server.start_worker("--fuse", "3", "--exit-when-idle", "1", name="fused"),
        server.start_worker(
            "--program", "toy", "--function", "user_code:train", "--exit-when-idle", "1", name="program"
        ),
    ]
    for worker in workers:
        assert server.wait_for_exit(worker, timeout=180) == 0, server.processes.logs()
    for sweep_id, trials in ((builtin.id, 6), (program.id, 2)):
        done = server.client.get_sweep(sweep_id)
        assert (done.status, done.counts) == ("completed", {"completed": trials}), done
    # Each of the four agents (two slots, the fused one, the program's) said why it left.
    logs = server.processes.logs()
    assert logs.count(EXITING) == 4, logs
    assert "Traceback" not in logs
