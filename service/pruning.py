"""The pruning rules: whether a trial goes on, decided from its value at one epoch and the
values other trials of its stage recorded there. Plain functions of numbers; the store
gathers the values and keeps each decision (``service.store.pruning``).

Both rules are Optuna's, written out so that the server can decide from stored values:

* ``asha`` (asynchronous successive halving, Optuna's ``SuccessiveHalvingPruner`` with
  ``min_early_stopping_rate=0``): rungs at ``min_epochs * eta**k`` epochs, below the
  stage's epochs. A trial reaching a rung goes on when its value is among the top
  ``1/eta`` of the values recorded at that rung so far, its own included; while a rung
  holds fewer than ``eta`` values, only a value as good as the best goes on. Nothing waits
  for a rung to fill, so asynchronous workers never idle.
* ``median`` (Optuna's ``MedianPruner``): after ``warmup_epochs`` epochs, a trial stops when
  its best value so far is worse than the median of the values that the stage's completed
  trials recorded at the same epoch, once at least ``min_trials`` of them did.

A value that is not a finite number (NaN, or none reported) stops the trial at once. A
diverged trial counts as the worst possible value at every rung it reached. Ties go on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AshaPruner",
    "Decision",
    "MedianPruner",
    "NoPruner",
    "PrunerConfig",
    "asha_decide",
    "asha_rungs",
    "decision_steps",
    "median",
    "median_decide",
]


class _Pruner(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoPruner(_Pruner):
    """Every trial runs all of its stage's epochs (the default)."""

    kind: Literal["none"] = "none"


class AshaPruner(_Pruner):
    """Asynchronous successive halving: rungs at ``min_epochs * eta**k`` epochs."""

    kind: Literal["asha"]
    min_epochs: int = Field(default=1, ge=1, le=10_000, description="The first rung, in epochs.")
    eta: int = Field(default=3, ge=2, le=100, description="Rungs grow by this factor; the top 1/eta go on.")


class MedianPruner(_Pruner):
    """Stop a trial whose best value so far is worse than the median at the same epoch."""

    kind: Literal["median"]
    warmup_epochs: int = Field(default=1, ge=0, le=10_000, description="Epochs every trial runs before the rule.")
    min_trials: int = Field(
        default=5, ge=1, le=1_000_000, description="Completed trials needed at an epoch before it prunes there."
    )


PrunerConfig = Annotated[NoPruner | AshaPruner | MedianPruner, Field(discriminator="kind")]


@dataclass(frozen=True)
class Decision:
    """One decision about one trial at one epoch (``step``): ``value`` is what was compared
    (``None``: not a finite number, the worst), ``cutoff`` what it had to reach (``None``
    when there was nothing to compare against), ``compared`` how many trials' values the
    cutoff was taken over, ``pruned`` whether the trial stops, ``reason`` a sentence."""

    step: int
    value: float | None
    cutoff: float | None
    compared: int
    pruned: bool
    reason: str


def asha_rungs(config: AshaPruner, epochs: int) -> list[int]:
    """The rungs of a stage of ``epochs`` epochs, in order: those below ``epochs`` (a trial
    at its last epoch has nothing left to save)."""
    rungs: list[int] = []
    rung = config.min_epochs
    while rung < epochs:
        rungs.append(rung)
        rung *= config.eta
    return rungs


def decision_steps(config: NoPruner | AshaPruner | MedianPruner, epochs: int) -> list[int]:
    """The epochs at which a trial of a stage of ``epochs`` epochs may be stopped."""
    if isinstance(config, AshaPruner):
        return asha_rungs(config, epochs)
    if isinstance(config, MedianPruner):
        return list(range(config.warmup_epochs + 1, epochs))
    return []


def _loss(value: float | None, *, minimize: bool) -> float:
    """A value as a loss, lower is better; not a finite number is the worst."""
    if value is None or not math.isfinite(value):
        return math.inf
    return value if minimize else -value


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _show(value: float | None) -> str:
    return "not a number" if value is None else f"{value:.4g}"


def asha_decide(
    value: float | None,
    others: Sequence[float | None],
    *,
    step: int,
    eta: int,
    minimize: bool,
    metric: str = "the objective",
) -> Decision:
    """The decision at rung ``step`` for a trial whose value there is ``value``, given the
    values ``others`` that other trials recorded at that rung so far (``None`` or NaN: a
    diverged trial or a value that is not a number, the worst)."""
    value = _finite(value)
    compared = len(others) + 1
    if value is None:
        reason = f"stopped at epoch {step}: its {metric} is not a number, which no rung lets on"
        return Decision(step, None, None, compared, True, reason)
    losses = sorted([_loss(v, minimize=minimize) for v in others] + [_loss(value, minimize=minimize)])
    # The top 1/eta; while a rung holds fewer than eta values, only the best so far.
    keep = max(compared // eta, 1)
    cutoff_loss = losses[keep - 1]
    cutoff = None if math.isinf(cutoff_loss) else (cutoff_loss if minimize else -cutoff_loss)
    pruned = _loss(value, minimize=minimize) > cutoff_loss
    worse = "above" if minimize else "below"
    top = f"the best {keep} of the {compared} values recorded at this rung (top 1/{eta})"
    if pruned:
        reason = (
            f"pruned at epoch {step} (ASHA rung): {metric} {_show(value)} is {worse} the cutoff {_show(cutoff)}, {top}"
        )
    else:
        reason = f"went on at epoch {step} (ASHA rung): {metric} {_show(value)} is among {top}"
    return Decision(step, value, cutoff, compared, pruned, reason)


def median(values: Sequence[float | None], *, minimize: bool) -> float | None:
    """The median of ``values``, a value that is not a number counting as the worst
    (``None`` when that is what the median is)."""
    losses = sorted(_loss(v, minimize=minimize) for v in values)
    n = len(losses)
    middle = losses[n // 2] if n % 2 else (losses[n // 2 - 1] + losses[n // 2]) / 2
    if math.isinf(middle):
        return None
    return middle if minimize else -middle


def median_decide(
    best: float | None,
    others: Sequence[float | None],
    *,
    step: int,
    min_trials: int,
    minimize: bool,
    metric: str = "the objective",
) -> Decision:
    """The decision at epoch ``step`` for a trial whose best value so far is ``best``,
    given the values ``others`` that the stage's completed trials recorded at that epoch."""
    best = _finite(best)
    compared = len(others)
    if best is None:
        reason = f"stopped at epoch {step}: its {metric} is not a number at any epoch so far"
        return Decision(step, None, None, compared, True, reason)
    if compared < min_trials:
        reason = (
            f"went on at epoch {step}: {compared} completed trials reached this epoch, "
            f"fewer than the {min_trials} the median rule needs"
        )
        return Decision(step, best, None, compared, False, reason)
    cutoff = median(others, minimize=minimize)
    cutoff_loss = math.inf if cutoff is None else _loss(cutoff, minimize=minimize)
    pruned = _loss(best, minimize=minimize) > cutoff_loss
    worse = "above" if minimize else "below"
    over = f"the median of the {compared} completed trials at this epoch"
    said = f"best {metric} so far {_show(best)}"
    if pruned:
        reason = f"pruned at epoch {step} (median rule): {said} is {worse} {_show(cutoff)}, {over}"
    else:
        reason = f"went on at epoch {step} (median rule): {said} is not {worse} {_show(cutoff)}, {over}"
    return Decision(step, best, cutoff, compared, pruned, reason)
