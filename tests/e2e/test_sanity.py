"""A sanity sweep end to end: a real server and a real worker run the checks with the
built-in trainer before the first stage, and the sweep goes on once they pass."""

from __future__ import annotations

import pytest

from hypersweep.sanity import SANITY_INDEX
from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e


def test_a_worker_runs_the_sanity_checks_then_the_sweep(server: Server) -> None:
    client = server.client
    sweep = client.submit_sweep(
        {
            "name": "e2e-sanity",
            "sanity": True,
            "space": {"lr": {"type": "float", "low": 1e-2, "high": 1e-1, "scale": "log"}},
            "search": {"kind": "grid", "grid_points": 2},
            "stages": [{"epochs": 1}],
            "trainer": {"dataset": "digits", "hidden": 32},
        }
    )
    assert sweep.status == "queued" and sweep.sanity is not None and sweep.sanity["status"] == "pending"
    worker = server.start_worker("--sweep", str(sweep.id))
    assert server.wait_for_exit(worker, timeout=180) == 0, server.processes.logs()

    done = client.get_sweep(sweep.id)
    assert done.status == "completed", (done.warnings, done.sanity)
    assert done.sanity is not None and done.sanity["status"] == "passed"
    assert [check["name"] for check in done.sanity["checks"]] == ["initial_loss", "regularization", "overfit"]
    trials = client.list_trials(sweep.id, limit=100)
    sanity = [t for t in trials if t.number == SANITY_INDEX]
    assert len(sanity) == 1 and sanity[0].status == "completed"
    assert sorted(t.status for t in trials if t.number != SANITY_INDEX) == ["completed", "completed"]
    assert done.counts == {"completed": 2}  # the sanity trial is no trial of the search
