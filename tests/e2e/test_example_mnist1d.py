"""The MNIST-1D example (examples/mnist1d) run as its README says, both forms, on a tiny
sweep: a real server, real ``hypersweep worker --program`` processes, the example's code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mnist1d"


@pytest.mark.parametrize("form", ["function", "command"])
def test_the_example_runs_as_documented(
    server: Server, form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = yaml.safe_load((EXAMPLE / f"sweep-{form}.yaml").read_text())
    # The example's own sweep, cut to two one-epoch trials.
    doc["stages"] = [{"trials": 2, "epochs": 1}]
    sweep = server.client.submit_sweep(doc)
    monkeypatch.setenv("MNIST1D_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(EXAMPLE))
    how = (
        ["--function", "objective:train"]
        if form == "function"
        else ["--", sys.executable, str(EXAMPLE / "train.py"), "{args}"]
    )
    worker = server.start_worker("--program", doc["program"], "--sweep", str(sweep.id), *how)
    assert server.wait_for_exit(worker, timeout=300) == 0, server.processes.logs()
    done = server.client.get_sweep(sweep.id)
    assert done.counts == {"completed": 2}, server.processes.logs()
    assert done.best is not None
    assert 0.1 < done.best.metrics["test_accuracy"] <= 1.0
    trial = server.client.get_trial(done.best.id)
    assert [point.step for point in trial.curve or ()] == [0, 1]
