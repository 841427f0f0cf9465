"""Pruning end to end: a real server (SQLite file), a real ``hypersweep worker --program``
running a command, and the command's process ended when its trial is pruned."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, wait_until

pytestmark = pytest.mark.e2e

#: A good learning rate reports 0.9 at once and finishes fast; a bad one reports 0.2 and
#: would then take a minute per epoch.
PROGRAM = """
import os, sys, time
import hypersweep

args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
open(os.path.join(os.environ["PID_DIR"], str(os.getpid())), "w").close()
good = float(args["lr"]) < 0.1
for epoch in range(1, int(args["epochs"]) + 1):
    hypersweep.report(epoch, val_accuracy=0.9 if good else 0.2)
    time.sleep(0.05 if good else 60)
"""


def test_a_pruned_command_gets_sigterm_and_its_trial_ends_pruned(server: Server, tmp_path: Path) -> None:
    client = server.client
    (server.processes.workdir / "prunable.py").write_text(PROGRAM)
    created = client.submit_sweep(
        {
            "name": "prune-a-command",
            "program": "toy",
            "objective": {"metric": "val_accuracy", "mode": "max"},
            "space": {"lr": {"type": "categorical", "values": [0.01, 0.5]}},
            "search": {"kind": "grid"},
            "stages": [{"epochs": 4, "pruner": {"kind": "asha", "min_epochs": 1, "eta": 2}}],
            "parallelism": 1,
        }
    )
    pids = tmp_path / "pids"
    pids.mkdir()
    os.environ["PID_DIR"] = str(pids)
    try:
        worker = server.start_worker(
            "--program",
            "toy",
            "--sweep",
            str(created.id),
            "--grace",
            "3",
            "--",
            sys.executable,
            "prunable.py",
            "{args}",
        )
    finally:
        del os.environ["PID_DIR"]
    assert server.wait_for_exit(worker, timeout=60) == 0, server.processes.logs()
    good, bad = sorted(client.list_trials(created.id), key=lambda t: t.number)
    assert (good.status, bad.status) == ("completed", "pruned"), server.processes.logs()
    assert bad.metrics["pruned_at"] == 1 and "0.2" in bad.metrics["prune_reason"]
    for pid in [int(p.name) for p in pids.iterdir()]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    wait_until(lambda: client.get_sweep(created.id).status == "completed", what="the sweep to complete")
