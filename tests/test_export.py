"""Exports to the tools users have: an Optuna study that Optuna itself opens, and
TensorBoard runs that TensorBoard's own reader reads."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml
from fastapi.testclient import TestClient
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from hypersweep import Client
from hypersweep.worker.client import ServiceClient
from tests.conftest import sweep_doc
from tests.test_commands import hs, run_sweep

SPACE = {
    "lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "hidden": {"type": "int", "low": 16, "high": 256, "scale": "log"},
    "optimizer": {"type": "categorical", "values": ["sgd", "adam"]},
}
#: What each trial of the sweep does, by number: its end and, when completed, its value.
ENDS: list[tuple[str, float | None]] = [
    ("completed", 0.61),
    ("completed", 0.93),
    ("diverged", None),
    ("completed", 0.78),
    ("failed", None),
]


@pytest.fixture
def api(client: TestClient) -> Iterator[Client]:
    with Client(http=client) as api:
        yield api


@pytest.fixture
def sweep_id(client: TestClient, api: Client) -> int:
    """A sweep of six trials, five of them ended as ENDS says, each after reporting a curve."""
    sweep = api.submit(sweep_doc(space=SPACE, stages=[{"trials": 6, "epochs": 3}]))
    service = ServiceClient(client)
    for status, value in ENDS:
        [trial] = service.claim(worker_id="w", sweep_id=sweep.id)
        for step in (1, 2, 3):
            point = {"val_accuracy": (value or 0.2) * step / 3, "train_loss": 2.0 / step}
            service.report(trial.id, lease_token=trial.lease_token, step=step, metrics=point)
        metrics = {"val_accuracy": value if value is not None else math.nan, "train_loss": 0.5}
        error = "boom" if status == "failed" else None
        service.finish(trial.id, lease_token=trial.lease_token, status=status, metrics=metrics, error=error)
    return sweep.id


def test_the_exported_study_opens_in_optuna_with_every_finished_trial(
    client: TestClient, api: Client, sweep_id: int, tmp_path: Path
) -> None:
    ServiceClient(client).claim(worker_id="w", sweep_id=sweep_id)  # one trial running: left out
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    name, count = api.export_study(sweep_id, storage)

    assert (name, count) == (f"test-sweep-{sweep_id}", len(ENDS))
    study = optuna.load_study(study_name=name, storage=storage)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.user_attrs["hypersweep_sweep_id"] == sweep_id
    ours = [trial for trial in api.trials(sweep_id, sort="number") if trial.finished]
    assert len(study.trials) == len(ours)
    for theirs, mine in zip(study.trials, ours, strict=True):
        assert theirs.params == mine.params
        assert theirs.user_attrs["number"] == mine.number
        assert theirs.user_attrs["hypersweep_status"] == mine.status
        assert theirs.datetime_start == mine.started_at.replace(tzinfo=None)  # type: ignore[union-attr]
    assert [trial.state for trial in study.trials] == [
        TrialState.COMPLETE if status == "completed" else TrialState.FAIL for status, _ in ENDS
    ]
    assert study.best_value == pytest.approx(max(value for _, value in ENDS if value is not None))
    assert study.best_trial.params == api.get_sweep(sweep_id).best.params  # type: ignore[union-attr]
    assert study.trials[1].intermediate_values == pytest.approx({1: 0.31, 2: 0.62, 3: 0.93})
    assert study.trials[4].user_attrs["error"] == "boom"

    distributions = study.trials[0].distributions
    assert distributions["lr"] == FloatDistribution(1e-4, 1.0, log=True)
    assert distributions["dropout"] == FloatDistribution(0.0, 0.5)
    assert distributions["hidden"] == IntDistribution(16, 256, log=True)
    assert distributions["optimizer"] == CategoricalDistribution(["sgd", "adam"])
    # Optuna's own tools work on it as on a study of its own.
    importances = optuna.importance.get_param_importances(study)
    assert set(importances) == set(SPACE)

    with pytest.raises(ValueError, match="holds a study named"):
        api.export_study(sweep_id, storage)


def test_the_exported_runs_read_back_in_tensorboard(api: Client, sweep_id: int, tmp_path: Path) -> None:
    written = api.export_tensorboard(sweep_id, tmp_path / "runs")

    trials = api.trials(sweep_id, sort="number")
    assert written == len(trials)
    best = trials[1]
    events = EventAccumulator(str(tmp_path / "runs" / "trial-0001"))
    events.Reload()
    curve = [(event.step, event.value) for event in events.Scalars("val_accuracy")]
    assert curve == [(1, pytest.approx(0.31)), (2, pytest.approx(0.62)), (3, pytest.approx(0.93))]
    result = [event.value for event in events.Scalars("hparam/val_accuracy")]
    assert result == [pytest.approx(best.metrics["val_accuracy"])]
    record = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    started = plugin_data_pb2.HParamsPluginData.FromString(record).session_start_info
    assert started.hparams["lr"].number_value == pytest.approx(best.params["lr"])
    assert started.hparams["optimizer"].string_value == best.params["optimizer"]
    assert started.hparams["status"].string_value == "completed"
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == [f"trial-{t.number:04d}" for t in trials]
    diverged = EventAccumulator(str(tmp_path / "runs" / "trial-0002"))
    diverged.Reload()
    assert "hparam/val_accuracy" not in diverged.Tags()["scalars"]  # NaN is no result to tabulate
    assert len(diverged.Scalars("train_loss")) == 3


def test_the_command_line_exports_and_explains_what_it_needs(live_server: str, tmp_path: Path) -> None:
    doc_path = tmp_path / "sweep.yaml"
    doc_path.write_text(yaml.safe_dump(sweep_doc(stages=[{"trials": 2, "epochs": 1}])))
    assert hs("submit", str(doc_path), server=live_server).exit_code == 0
    run_sweep(live_server, 1, [0.4, 0.8])
    storage = f"sqlite:///{tmp_path / 'study.db'}"

    done = hs("export", "1", "--format", "optuna", "--to", storage, "--study", "mine", server=live_server)
    assert done.exit_code == 0, done.output
    assert "wrote 2 trials to the Optuna study 'mine'" in done.output
    assert optuna.load_study(study_name="mine", storage=storage).best_value == pytest.approx(0.8)
    again = hs("export", "1", "--format", "optuna", "--to", storage, "--study", "mine", server=live_server)
    assert again.exit_code == 1 and "holds a study named 'mine' already" in again.output

    runs = hs("export", "1", "--format", "tensorboard", "--to", str(tmp_path / "tb"), server=live_server)
    assert runs.exit_code == 0, runs.output
    assert sorted(path.name for path in (tmp_path / "tb").iterdir()) == ["trial-0000", "trial-0001"]

    for args, says in [
        (["--format", "optuna"], "needs --to STORAGE"),
        (["--format", "optuna", "--to", "not a url"], "is not a database URL"),
        (["--format", "optuna", "--to", f"sqlite:///{tmp_path}/missing/study.db"], "there is no directory"),
        (["--format", "tensorboard"], "needs --to DIRECTORY"),
        (["--format", "tensorboard", "--to", str(doc_path)], "is a file"),
        (["--format", "xml"], "use csv, json, optuna or tensorboard"),
    ]:
        refused = hs("export", "1", *args, server=live_server)
        assert refused.exit_code == 1, (args, refused.output)
        assert says in refused.output, (args, refused.output)
        assert "Traceback" not in refused.output
