"""The sanity checks run before a sweep's first stage: what each one asks of a training
run, how its measurement is judged, and how the results travel and are stored.

The checks are those of CS231n's "babysitting the learning process", made with the
sweep's own model and data:

* ``initial_loss``: with no regularisation, the loss at initialisation is about ``ln C``
  for ``C`` classes (a softmax that starts out undecided);
* ``regularization``: the same loss with a large ``reg`` is higher (the penalty is part
  of the objective);
* ``overfit``: trained on a subset of :data:`SUBSET` examples with no regularisation, the
  model reaches 100% training accuracy within :data:`STEPS` steps.

A program takes part by honouring the ``sanity`` setting (see :func:`check_settings`):
given ``sanity: "initial_loss"`` or ``"regularization"`` it reports ``initial_loss`` (the
objective, penalty included, before any step) and ``classes``; given ``sanity:
"overfit"`` it trains on the first ``subset`` training examples for ``steps`` steps and
reports ``train_accuracy`` on them. The measuring is the worker's (or ``hypersweep
check``'s); this module only judges, so the server imports it without PyTorch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = [
    "CHECKS",
    "INITIAL_LOSS_TOLERANCE",
    "REG",
    "REG_RISE",
    "SANITY_INDEX",
    "STEPS",
    "SUBSET",
    "CheckResult",
    "SanityMode",
    "check_settings",
    "from_metrics",
    "judge_initial_loss",
    "judge_overfit",
    "judge_regularization",
    "lr_candidates",
    "middle_params",
    "passed",
    "to_metrics",
]

#: The checks, in the order they run.
CHECKS: tuple[str, ...] = ("initial_loss", "regularization", "overfit")
#: A sweep's ``sanity`` option: run the checks and hold the sweep when one fails
#: (``True``), run them and start anyway (``"warn"``), or skip them (``False``).
SanityMode = bool | Literal["warn"]
#: The sanity trial's ``number`` and index in stage 0: before every trial of the search.
SANITY_INDEX = -1
#: Training examples the overfitting check trains on.
SUBSET = 20
#: Optimiser steps the overfitting check may take (full batches of the subset).
STEPS = 200
#: The "large" regularisation strength of the regularisation check.
REG = 1.0
#: How far the initial loss may lie from ``ln C``, as a fraction of ``ln C``.
INITIAL_LOSS_TOLERANCE = 0.2
#: How much the loss must rise with :data:`REG`, as a fraction of the loss without it.
REG_RISE = 0.01


@dataclass(frozen=True)
class CheckResult:
    """One check as it went: what it measured, what was expected (in words, and the value
    the measurement is held against), whether it passed, and a sentence saying so."""

    name: str
    measured: float | None
    expected: str
    expected_value: float | None
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_settings(settings: Mapping[str, Any], check: str, **overrides: Any) -> dict[str, Any]:
    """The settings one check's run is given: the trial's settings, then ``sanity`` (the
    check's name), ``reg`` (0, or :data:`REG` for ``regularization``), ``subset`` and
    ``steps`` (for ``overfit``, which also sets ``dropout`` to 0 where there is one), then
    ``overrides``."""
    out = dict(settings)
    out["sanity"] = check
    out["reg"] = REG if check == "regularization" else 0.0
    if check == "overfit":
        out["subset"] = SUBSET
        out["steps"] = STEPS
        if "dropout" in out:
            out["dropout"] = 0.0
    out.update(overrides)
    return out


def middle_params(space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The point the checks run at: the middle of each axis of ``space`` (a sweep's space
    as JSON) in its scale (the geometric mean on a log axis, rounded on an int axis), and
    the first value of a categorical axis."""
    return {name: _at(param, 0.5) for name, param in space.items()}


def lr_candidates(space: Mapping[str, Mapping[str, Any]], settings: Mapping[str, Any]) -> list[float | None]:
    """The learning rates the overfitting check tries, in order, until one overfits: the
    middle of a tuned ``lr`` axis, then the points at three quarters and one quarter of it;
    one try at the settings' own rate (``None``: leave it as it is) when ``lr`` is not tuned."""
    axis = space.get("lr")
    if axis is None or axis.get("type") == "categorical":
        return [None]
    return [float(_at(axis, f)) for f in (0.5, 0.75, 0.25)]


def _at(param: Mapping[str, Any], fraction: float) -> Any:
    if param.get("type") == "categorical":
        return param["values"][0]
    low, high = float(param["low"]), float(param["high"])
    if param.get("scale") == "log":
        value = 10 ** (math.log10(low) + fraction * (math.log10(high) - math.log10(low)))
    else:
        value = low + fraction * (high - low)
    return round(value) if param.get("type") == "int" else value


def judge_initial_loss(loss: float | None, classes: int | None) -> CheckResult:
    """The loss at initialisation, with no regularisation, against ``ln classes``."""
    if loss is None or classes is None or classes < 2:
        missing = "initial_loss" if loss is None else "classes"
        return CheckResult(
            "initial_loss",
            loss,
            "about ln C",
            None,
            False,
            f"the run did not report {missing}; does the program honour the sanity setting?",
        )
    expected = math.log(classes)
    ok = math.isfinite(loss) and abs(loss - expected) <= INITIAL_LOSS_TOLERANCE * expected
    words = f"{expected:.3f} (ln {classes}) ± {INITIAL_LOSS_TOLERANCE:.0%}"
    verdict = (
        "the softmax starts out undecided"
        if ok
        else "the model starts out confident: look at the output layer's initial scale, or the loss"
    )
    return CheckResult("initial_loss", loss, words, expected, ok, f"initial loss {loss:.4g}: {verdict}")


def judge_regularization(loss: float | None, loss_with_reg: float | None, reg: float = REG) -> CheckResult:
    """The initial loss with ``reg`` against the one without: it must be higher."""
    if loss is None or loss_with_reg is None:
        return CheckResult(
            "regularization",
            loss_with_reg,
            f"above the loss with reg 0 (reg = {reg:g})",
            loss,
            False,
            "the run did not report initial_loss; does the program honour the sanity setting?",
        )
    floor = loss * (1 + REG_RISE)
    ok = loss_with_reg > floor
    verdict = "the penalty is part of the loss" if ok else "the loss ignores reg: is the setting used?"
    return CheckResult(
        "regularization",
        loss_with_reg,
        f"> {floor:.4g} ({loss:.4g} with reg 0, reg = {reg:g})",
        loss,
        ok,
        f"initial loss {loss_with_reg:.4g} with reg {reg:g}: {verdict}",
    )


def judge_overfit(accuracy: float | None, *, lr: float | None, steps: int = STEPS, subset: int = SUBSET) -> CheckResult:
    """The training accuracy on the subset after ``steps`` steps: it must be 100%."""
    at = f" at lr {lr:.3g}" if lr is not None else ""
    if accuracy is None:
        return CheckResult(
            "overfit",
            None,
            "1.0 (100%)",
            1.0,
            False,
            "the run did not report train_accuracy; does the program honour the sanity setting?",
        )
    ok = accuracy >= 1.0
    verdict = (
        f"the model fits {subset} examples{at} within {steps} steps"
        if ok
        else f"the model could not fit {subset} examples{at} in {steps} steps: check the learning rate and the model"
    )
    return CheckResult("overfit", accuracy, "1.0 (100%)", 1.0, ok, f"training accuracy {accuracy:.3g}: {verdict}")


def passed(results: Sequence[CheckResult]) -> bool:
    return bool(results) and all(result.passed for result in results)


def to_metrics(results: Sequence[CheckResult]) -> dict[str, Any]:
    """The results as a trial's final metrics (flat: ``initial_loss.measured``, ...)."""
    metrics: dict[str, Any] = {}
    for result in results:
        for key, value in result.as_dict().items():
            if key != "name":
                metrics[f"{result.name}.{key}"] = value
    return metrics


def from_metrics(metrics: Mapping[str, Any]) -> list[CheckResult]:
    """The results :func:`to_metrics` wrote, in :data:`CHECKS` order; a check whose
    fields are missing or malformed is left out."""
    results: list[CheckResult] = []
    for name in CHECKS:
        fields = {key: metrics.get(f"{name}.{key}") for key in ("measured", "expected", "expected_value", "passed")}
        detail = metrics.get(f"{name}.detail")
        if not isinstance(fields["passed"], bool) or not isinstance(detail, str):
            continue
        measured, expected_value = (_number(fields[key]) for key in ("measured", "expected_value"))
        results.append(
            CheckResult(name, measured, str(fields["expected"] or ""), expected_value, fields["passed"], detail)
        )
    return results


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if value in ("NaN", "Infinity", "-Infinity"):
        return float(value.replace("Infinity", "inf"))
    return None
