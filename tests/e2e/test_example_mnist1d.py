"""The MNIST-1D example (examples/mnist1d) run as its README says, both forms, on a tiny
sweep: a real server, real ``hypersweep worker --program`` processes, the example's code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

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


class Preempted(Exception):
    """Stands for the worker going away mid-run."""


def test_the_example_resumes_from_its_checkpoint_as_if_never_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MNIST1D_CACHE_DIR", str(tmp_path / "data"))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import cnn

    settings = cnn.Settings(epochs=3, channels=8)
    whole_points: list[tuple[int, dict[str, float]]] = []
    whole = cnn.fit(settings, lambda step, **metrics: whole_points.append((step, metrics)))

    def preempted_at_epoch_two(step: int, **metrics: float) -> None:
        if step == 2:
            raise Preempted  # after epoch 1 was saved, before epoch 2 was

    folder = tmp_path / "checkpoint"
    folder.mkdir()
    with pytest.raises(Preempted):
        cnn.fit(settings, preempted_at_epoch_two, folder)
    assert (folder / cnn.CHECKPOINT_FILE).exists()

    loaded: list[Any] = []
    load = cnn.load_checkpoint
    monkeypatch.setattr(cnn, "load_checkpoint", lambda *args: loaded.append(load(*args)) or loaded[-1])
    points: list[tuple[int, dict[str, float]]] = []
    resumed = cnn.fit(settings, lambda step, **metrics: points.append((step, metrics)), folder)
    [state] = loaded
    assert state is not None and state["epoch"] == 1
    # Steps 0 and 1 told again from the checkpoint, then 2 and 3 trained: the same run.
    assert points == whole_points
    assert [step for step, _ in points] == [0, 1, 2, 3]
    assert {k: v for k, v in resumed.items() if k != "seconds"} == {k: v for k, v in whole.items() if k != "seconds"}
