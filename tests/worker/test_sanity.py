"""The sanity checks of a program (``worker.sanity``) and ``hypersweep check``: each check
passes on a healthy program and fails on one broken for it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hypersweep import Trial
from hypersweep.cli import app
from hypersweep.sanity import CheckResult
from hypersweep.worker.runners.function import FunctionRunner
from hypersweep.worker.sanity import run_checks
from tests.worker import sanity_programs as programs


def checks(function: Callable[[Trial], Any], **settings: Any) -> dict[str, CheckResult]:
    results = run_checks({"lr": 0.1, **settings}, {}, runner=FunctionRunner(function))
    return {result.name: result for result in results}


def test_an_honest_program_passes_every_check() -> None:
    results = checks(programs.honest)
    assert all(result.passed for result in results.values()), results
    assert results["initial_loss"].expected_value == pytest.approx(1.3863, abs=1e-4)  # ln 4


def test_a_program_that_ignores_reg_fails_the_regularization_check() -> None:
    results = checks(programs.ignores_reg)
    assert not results["regularization"].passed
    assert results["initial_loss"].passed and results["overfit"].passed
    assert "ignores reg" in results["regularization"].detail


def test_a_program_whose_output_is_scaled_up_fails_the_initial_loss_check() -> None:
    results = checks(programs.scaled_output)
    assert not results["initial_loss"].passed
    assert results["initial_loss"].measured is not None and results["initial_loss"].measured > 1.2 * 1.3863


def test_a_learning_rate_of_zero_fails_the_overfitting_check() -> None:
    results = checks(programs.honest, lr=0.0)
    assert not results["overfit"].passed
    assert results["overfit"].measured is not None and results["overfit"].measured < 1.0


def test_a_program_that_ignores_the_sanity_setting_fails_every_check() -> None:
    results = checks(programs.ignores_sanity)
    assert not any(result.passed for result in results.values())
    assert "does the program honour the sanity setting" in results["initial_loss"].detail


def write_sweep(tmp_path: Path, **overrides: Any) -> Path:
    doc: dict[str, Any] = {
        "name": "check",
        "space": {"lr": {"type": "float", "low": 0.05, "high": 0.2, "scale": "log"}},
        "stages": [{"trials": 4, "epochs": 1}],
        **overrides,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_check_prints_each_check_and_exits_non_zero_on_a_failure(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, program="prog")
    runner = CliRunner()
    good = runner.invoke(app, ["check", str(sweep), "--function", "tests.worker.sanity_programs:honest"])
    assert good.exit_code == 0, good.output
    for name in ("initial_loss", "regularization", "overfit"):
        assert name in good.output
    assert "1.386 (ln 4)" in good.output and "FAIL" not in good.output
    bad = runner.invoke(app, ["check", str(sweep), "--function", "tests.worker.sanity_programs:ignores_reg"])
    assert bad.exit_code == 1, bad.output
    assert "FAIL" in bad.output and "the loss ignores reg" in bad.output


def test_check_refuses_an_invalid_sweep_in_one_line(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, stages=[])
    result = CliRunner().invoke(app, ["check", str(sweep)])
    assert result.exit_code == 2
    assert "is not a valid sweep: stages" in result.output
    assert "Traceback" not in result.output


COMMAND_PROGRAM = """
import json, math, os
settings = json.loads(os.environ["HYPERSWEEP_PARAMS"])
check = os.environ["HYPERSWEEP_SANITY"]
assert check == settings["sanity"], (check, settings)
if check in ("initial_loss", "regularization"):
    # Logits all zero: the data loss is ln 10; the weights' penalty is 1.0.
    final = {"initial_loss": math.log(10) + settings["reg"] * 1.0, "classes": 10}
    print("@hypersweep " + json.dumps({"final": final}))
else:
    assert (settings["subset"], settings["steps"], settings["reg"]) == (20, 200, 0.0)
    print("@hypersweep " + json.dumps({"step": settings["steps"], "train_accuracy": 1.0}))
"""


def test_check_runs_a_command_with_the_sanity_setting_in_its_environment(tmp_path: Path) -> None:
    import sys

    script = tmp_path / "train.py"
    script.write_text(COMMAND_PROGRAM)
    sweep = write_sweep(tmp_path, program="prog")
    result = CliRunner().invoke(app, ["check", str(sweep), "--", sys.executable, str(script)])
    assert result.exit_code == 0, result.output
    assert "2.303 (ln 10)" in result.output and "FAIL" not in result.output


@pytest.fixture
def service(client: Any) -> Any:
    from hypersweep.worker.client import ServiceClient

    return ServiceClient(client)


@pytest.mark.parametrize(("function", "started"), [(programs.honest, True), (programs.ignores_reg, False)])
def test_a_program_worker_runs_the_sanity_trial_then_the_sweep_or_is_held(
    service: Any, function: Callable[[Trial], Any], started: bool
) -> None:
    from hypersweep.worker.agent import Agent, IdleBackoff

    sweep = service.submit_sweep(
        {
            "name": "program-sanity",
            "program": "prog",
            "sanity": True,
            "space": {"lr": {"type": "float", "low": 0.05, "high": 0.2, "scale": "log"}},
            "stages": [{"trials": 2}],
        }
    )
    agent = Agent(
        service,
        worker_id="w",
        sweep_id=sweep.id,
        backoff=IdleBackoff(base=0.01, cap=0.05),
        runner=FunctionRunner(function),
        program="prog",
    )
    agent.run()
    done = service.get_sweep(sweep.id)
    assert done.sanity is not None and done.sanity["status"] == ("passed" if started else "failed")
    if started:
        assert done.status == "completed" and done.counts == {"completed": 2}
    else:
        assert done.status == "queued" and done.counts == {}
        [check] = [c for c in done.sanity["checks"] if not c["passed"]]
        assert check["name"] == "regularization"
