"""``python -m hypersweep.trainer``: JSON lines out, non-finite numbers as strings, one-line errors.

Two tests start a real ``python -m hypersweep.trainer``; the rest call its ``main`` in-process."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from hypersweep.trainer.__main__ import _print_line, main

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hypersweep.trainer", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_prints_one_json_line_per_epoch_then_the_final_metrics() -> None:
    done = _run("--params", '{"hidden": 16, "lr": 0.05}', "--dataset", "digits", "--epochs", "2")

    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["epoch"] for line in lines[:-1]] == [1, 2]
    assert set(lines[0]) == {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"}
    final = lines[-1]
    assert final["status"] == "completed"
    assert final["metrics"]["epochs_run"] == 2
    assert final["metrics"]["stop_reason"] == "completed"
    assert 0.0 <= final["metrics"]["test_accuracy"] <= 1.0


def test_unknown_setting_is_one_line_and_exit_code_2() -> None:
    done = _run("--params", '{"hiddden": 16}')

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "unknown trainer setting(s): hiddden" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--params", '{"lr": "fast"}'], "invalid trainer settings: lr:"),
        (["--params", '{"lr": 1}', "--epochs", "0"], "epochs:"),
        (["--params", '{"lr_schedule": "step"}'], "invalid trainer settings: lr_schedule step needs lr_step_epochs"),
        (["--params", "[1, 2]"], "must be a JSON object"),
        (["--params", "{lr: 1}"], "not valid JSON"),
        (["--dataset", "npz:../etc/passwd"], "must not contain '..'"),
    ],
)
def test_bad_settings_and_data_sets_are_one_line_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)

    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_non_finite_numbers_are_written_as_strings(capsys: pytest.CaptureFixture[str]) -> None:
    _print_line({"a": math.nan, "b": {"c": math.inf, "d": -math.inf}, "e": 1.5, "f": "x"})

    assert json.loads(capsys.readouterr().out) == {
        "a": "NaN",
        "b": {"c": "Infinity", "d": "-Infinity"},
        "e": 1.5,
        "f": "x",
    }
