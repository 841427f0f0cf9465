"""A function per trial: the Trial it gets, TrialStopped at the report that must stop it,
what it returns, what it raises, and a function that never returns."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import hypersweep
from hypersweep.worker.runners.base import Stop, StopCause, TrialRun, Watch
from hypersweep.worker.runners.function import FunctionRunner, ProgramError, load_function

TRIAL = TrialRun(id=3, number=2, stage=0, params={"lr": 0.1}, settings={"lr": 0.1, "epochs": 4}, device="cpu")


def watch(**kwargs: Any) -> tuple[Watch, list[tuple[int, dict[str, float]]]]:
    sent: list[tuple[int, dict[str, float]]] = []
    return Watch(send=lambda step, metrics: sent.append((step, metrics)), **kwargs), sent


def test_the_function_gets_the_trial_and_its_return_updates_the_last_reports() -> None:
    seen: list[hypersweep.Trial] = []

    def train(trial: hypersweep.Trial) -> dict[str, float]:
        seen.append(trial)
        for epoch in range(1, trial.settings["epochs"] + 1):
            trial.report(epoch, train_loss=1.0 / epoch, val_accuracy=0.2 * epoch)
        return {"val_accuracy": 0.95, "test_accuracy": 0.9}

    w, sent = watch()
    result = FunctionRunner(train).run(TRIAL, w)
    assert result.status == "completed"
    assert result.metrics == {"train_loss": 0.25, "val_accuracy": 0.95, "test_accuracy": 0.9}
    assert [step for step, _ in sent] == [1, 2, 3, 4]
    [trial] = seen
    assert (trial.id, trial.number, trial.stage, trial.params, trial.device) == (3, 2, 0, {"lr": 0.1}, "cpu")


def test_the_module_level_report_goes_to_the_running_trial() -> None:
    def train(trial: hypersweep.Trial) -> None:
        hypersweep.report(1, train_loss=2.0)

    w, sent = watch()
    assert FunctionRunner(train).run(TRIAL, w).status == "completed"
    assert sent == [(1, {"train_loss": 2.0})]


def test_the_report_that_crosses_three_times_the_first_loss_raises_trial_stopped() -> None:
    reached: list[int] = []

    def train(trial: hypersweep.Trial) -> None:
        for step, loss in enumerate([1.0, 2.0, 3.5, 1.0, 1.0]):
            reached.append(step)
            trial.report(step, train_loss=loss)

    w, _ = watch()
    result = FunctionRunner(train).run(TRIAL, w)
    assert result.status == "diverged"
    assert result.metrics == {"train_loss": 3.5, "stop_reason": "diverged"}
    assert reached == [0, 1, 2]


def test_a_function_that_catches_the_stop_and_returns_still_ends_as_the_stop_says() -> None:
    def train(trial: hypersweep.Trial) -> dict[str, float]:
        try:
            trial.report(0, train_loss=1.0)
            trial.report(1, train_loss=float("nan"))
        except hypersweep.TrialStopped as stop:
            assert stop.reason == "nan"
        return {"val_accuracy": 0.5}

    result = FunctionRunner(train).run(TRIAL, watch()[0])
    assert result.status == "diverged" and result.metrics["stop_reason"] == "nan"


def test_a_server_stop_is_raised_at_the_next_report() -> None:
    told: list[Stop | None] = [None]

    def train(trial: hypersweep.Trial) -> None:
        trial.report(0, train_loss=1.0)
        told[0] = Stop(StopCause.SERVER, "cancelled")
        trial.report(1, train_loss=1.0)
        raise AssertionError("not reached")

    result = FunctionRunner(train).run(TRIAL, watch(interrupted=lambda: told[0])[0])
    assert result.status == "stopped" and result.stop == Stop(StopCause.SERVER, "cancelled")


def test_an_exception_fails_the_trial_with_its_text() -> None:
    def train(trial: hypersweep.Trial) -> None:
        trial.report(0, train_loss=1.0)
        raise ValueError("shapes (3, 4) and (5,) do not match")

    result = FunctionRunner(train).run(TRIAL, watch()[0])
    assert result.status == "failed"
    assert result.error is not None and "ValueError: shapes (3, 4) and (5,) do not match" in result.error
    assert result.metrics == {"train_loss": 1.0}


def test_a_return_value_that_is_not_a_mapping_fails_the_trial() -> None:
    result = FunctionRunner(lambda trial: 0.93).run(TRIAL, watch()[0])
    assert result.status == "failed"
    assert result.error == "the function returned float, not a mapping of final metrics or None"


def test_a_function_that_never_returns_is_left_after_its_time_limit_and_the_grace() -> None:
    release = threading.Event()

    def train(trial: hypersweep.Trial) -> None:
        release.wait(60)

    runner = FunctionRunner(train, grace=0.5)
    started = time.monotonic()
    result = runner.run(TRIAL, watch(timeout=0.5)[0])
    release.set()
    assert result.status == "failed" and result.error == "timed out after 0.5 s"
    assert runner.stuck
    assert time.monotonic() - started < 30


def test_a_function_that_reports_past_its_time_limit_is_stopped_at_that_report() -> None:
    def train(trial: hypersweep.Trial) -> None:
        step = 0
        while True:
            step += 1
            trial.report(step, train_loss=1.0)
            time.sleep(0.05)

    runner = FunctionRunner(train)
    result = runner.run(TRIAL, watch(timeout=0.3)[0])
    assert result.status == "failed" and result.error == "timed out after 0.3 s"
    assert not runner.stuck


def test_functions_load_from_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_training_code.py").write_text(
        textwrap.dedent(
            """
            def train(trial):
                return {"val_accuracy": trial.params["lr"]}
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    function = load_function("my_training_code:train")
    assert FunctionRunner(function).run(TRIAL, watch()[0]).metrics == {"val_accuracy": 0.1}


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_colon", "takes MODULE:CALLABLE"),
        ("no_such_module_here:train", "cannot import 'no_such_module_here'"),
        ("json:no_such_function", "has no 'no_such_function'"),
        ("json:__doc__", "is not callable"),
    ],
)
def test_a_function_that_cannot_be_loaded_is_refused_with_a_sentence(target: str, message: str) -> None:
    with pytest.raises(ProgramError, match=message):
        load_function(target)


def test_the_function_gets_the_trials_checkpoint_folder_when_there_is_one(tmp_path: Path) -> None:
    folders: list[Path | None] = []

    def train(trial: hypersweep.Trial) -> None:
        folders.append(trial.checkpoint_dir)
        trial.report(1, val_accuracy=0.5)

    FunctionRunner(train).run(TRIAL, watch()[0])
    with_root = dataclasses.replace(TRIAL, checkpoint_dir=tmp_path)
    FunctionRunner(train).run(with_root, watch()[0])
    assert folders == [None, tmp_path]
