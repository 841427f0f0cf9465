"""Run the sanity checks (``hypersweep.sanity``) for one sweep: with the built-in trainer
in this process, or with a user's program through its runner, one run per check.

A program's runs go through a :class:`~.runners.base.Watch` that never calls a run
diverged (the regularisation check's loss is meant to be large) and sends nothing to a
server: ``interrupted`` is how the caller ends them early (a lost lease, a shutdown).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from hypersweep.program import metric_value
from hypersweep.sanity import (
    SANITY_INDEX,
    CheckResult,
    check_settings,
    judge_initial_loss,
    judge_overfit,
    judge_regularization,
    lr_candidates,
)
from hypersweep.worker.runners.base import Runner, RunResult, Stop, TrialRun, Watch

__all__ = ["SanityInterrupted", "run_checks"]


class SanityInterrupted(Exception):
    """A check's run was ended from outside (``interrupted``): the checks did not finish."""


def run_checks(
    settings: Mapping[str, Any],
    space: Mapping[str, Mapping[str, Any]],
    *,
    runner: Runner | None = None,
    trial_id: int = 0,
    data_dir: str | None = None,
    device: str | None = None,
    timeout: float | None = None,
    interrupted: Callable[[], Stop | None] = lambda: None,
) -> list[CheckResult]:
    """The checks for a trial with ``settings`` (resolved, at the middle of ``space``):
    with the built-in trainer when ``runner`` is ``None``, else with ``runner``. Raises
    :class:`SanityInterrupted` when ``interrupted`` ends a run, and ``RuntimeError`` when a
    program's run fails (with its error)."""
    lrs = lr_candidates(space, settings)
    if runner is None:
        from hypersweep.trainer.sanity import check_builtin

        return check_builtin(settings, lrs=lrs, data_dir=data_dir, device=device)

    def run(check: str, **overrides: Any) -> dict[str, Any]:
        watch = Watch(
            send=lambda step, metrics: None,
            interrupted=interrupted,
            factor=math.inf,
            timeout=timeout,
            label=f"sanity check {check}",
        )
        trial = TrialRun(
            id=trial_id,
            number=SANITY_INDEX,
            stage=0,
            params={},
            settings=check_settings(settings, check, **overrides),
            device=device,
        )
        result: RunResult = runner.run(trial, watch)
        if result.stop is not None and result.status == "stopped":
            raise SanityInterrupted(result.stop.detail)
        if result.status == "failed":
            raise RuntimeError(f"the {check} check's run failed: {result.error or 'no error text'}")
        return result.metrics

    first = run("initial_loss")
    loss = _number(first.get("initial_loss"))
    classes = _number(first.get("classes"))
    with_reg = _number(run("regularization").get("initial_loss"))
    results = [
        judge_initial_loss(loss, int(classes) if classes is not None else None),
        judge_regularization(loss, with_reg),
    ]
    fit = None
    for lr in lrs:
        accuracy = _number(run("overfit", **({"lr": lr} if lr is not None else {})).get("train_accuracy"))
        fit = judge_overfit(accuracy, lr=lr if lr is not None else _number(settings.get("lr")))
        if fit.passed:
            break
    assert fit is not None
    return [*results, fit]


def _number(value: Any) -> float | None:
    number = metric_value(value)
    return number if number is not None and not math.isnan(number) else None
