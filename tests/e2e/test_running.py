"""``hypersweep.run``: a sweep of a Python function from Python, with a real server and
real worker processes started for the call."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import hypersweep
from hypersweep.running import program_name

pytestmark = pytest.mark.e2e

MODULE = """
import math


def train(trial):
    for epoch in range(1, trial.settings["epochs"] + 1):
        loss = 1 / epoch + abs(math.log10(trial.params["lr"]) + 2)
        trial.report(epoch, train_loss=loss, val_loss=loss)
    return {"test_loss": loss}
"""


def test_run_starts_a_server_and_workers_and_returns_the_ended_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "toy_objective.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    from toy_objective import train  # type: ignore[import-not-found]

    doc = {
        "name": "from-python",
        "objective": {"metric": "val_loss", "mode": "min"},
        "space": {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"}},
        "search": {"kind": "grid", "grid_points": 5},
        "stages": [{"epochs": 2}],
    }
    sweep = hypersweep.run(doc, train, workers=2, database=f"sqlite:///{tmp_path / 'run.db'}", progress=False)
    assert sweep.status == "completed"
    assert sweep.program == "toy_objective.train"
    assert sweep.counts == {"completed": 5}
    assert sweep.best is not None and sweep.best.params["lr"] == pytest.approx(1e-2)
    assert sweep.best.metrics["test_loss"] == pytest.approx(0.5)
    # The server was stopped with the call; its database holds the sweep.
    assert (tmp_path / "run.db").exists()


def test_program_names_come_from_the_function(monkeypatch: pytest.MonkeyPatch) -> None:
    assert program_name(program_name) == "hypersweep.running.program_name"

    def train() -> None: ...

    train.__module__ = "__main__"
    monkeypatch.setattr(sys, "argv", ["/home/me/My Script.py"])
    assert program_name(train) == "my-script.test_program_names_come_from_the_function.-locals-.train"
