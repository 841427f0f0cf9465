"""Diagnoses of a finished stage, as sentences with numbers for the sweep's warnings.

What CS231n teaches to read off a coarse stage, made automatic:

* the learning rates above which every trial diverged ("too high");
* the learning rates below which the loss barely moved over the stage ("too low");
* a large gap between training and validation accuracy among the best trials
  ("overfitting: raise reg or dropout");
* a best value on the border of its range (the narrowing extends that side for the next
  stage, :func:`border_warning`; after the last stage it is only reported).

Trials in, sentences out: nothing here knows of storage or HTTP. A trial takes part in a
diagnosis only when it carries what that diagnosis needs (an ``lr`` param; the loss at
the start and the end; ``train_accuracy`` and ``val_accuracy``), so programs get the same
diagnoses when they report the same metrics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hypersweep.service.search.space import CategoricalParam, Space
from hypersweep.service.statuses import TrialStatus

__all__ = [
    "BORDER_FRACTION",
    "GAP",
    "LOW_FALL",
    "MIN_TRIALS",
    "TOP",
    "StageTrial",
    "border_side",
    "border_warning",
    "diagnose",
]

#: A best value within this fraction of the range from an edge counts as on the border.
BORDER_FRACTION = 0.05
#: A learning-rate range is diagnosed only when it holds at least this many trials.
MIN_TRIALS = 3
#: A loss that fell by less than this fraction of its starting value barely moved.
LOW_FALL = 0.05
#: The best trials whose training and validation accuracy are compared.
TOP = 3
#: A mean gap between training and validation accuracy above this is overfitting.
GAP = 0.1
#: The names a learning rate goes by in a space.
LR_NAMES = ("lr", "learning_rate")


@dataclass(frozen=True)
class StageTrial:
    """A finished trial of the stage: its params, status, objective value and final
    metrics, and the first reported training loss (``None`` when not known)."""

    params: Mapping[str, Any]
    status: str
    value: float | None
    metrics: Mapping[str, Any]
    first_loss: float | None = None


def diagnose(
    trials: Sequence[StageTrial], *, stage: int, space: Space, original: Space, minimize: bool, last: bool
) -> list[str]:
    """The diagnoses of stage ``stage`` (whose space was ``space``; the sweep's is
    ``original``) from its finished ``trials``. The border of the space is diagnosed here
    only for the ``last`` stage: before that, the narrowing reports it."""
    warnings: list[str] = []
    lr_name = next((n for n in LR_NAMES if n in space and not isinstance(space[n], CategoricalParam)), None)
    if lr_name is not None:
        warnings += _too_high(trials, stage, lr_name)
        warnings += _too_low(trials, stage, lr_name)
    warnings += _overfitting(trials, stage, minimize)
    if last:
        warnings += _on_border(trials, stage, space, original, minimize)
    return warnings


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _by_lr(trials: Sequence[StageTrial], name: str, statuses: tuple[str, ...]) -> list[tuple[float, StageTrial]]:
    pairs = [(_number(t.params.get(name)), t) for t in trials if t.status in statuses]
    return sorted(((lr, t) for lr, t in pairs if lr is not None), key=lambda pair: pair[0])


def _too_high(trials: Sequence[StageTrial], stage: int, name: str) -> list[str]:
    ranked = _by_lr(trials, name, (TrialStatus.completed, TrialStatus.diverged))
    block = 0
    for _, trial in reversed(ranked):
        if trial.status != TrialStatus.diverged:
            break
        block += 1
    if block < MIN_TRIALS:
        return []
    threshold = ranked[-block][0]
    return [f"stage {stage}: {name} ≥ {threshold:.2g}: {block} of {block} diverged: too high"]


def _fall(trial: StageTrial) -> float | None:
    """How much of its starting value the training loss lost over the stage."""
    start = _number(trial.metrics.get("initial_loss"))
    if start is None:
        start = trial.first_loss
    end = _number(trial.metrics.get("train_loss"))
    if start is None or end is None or start <= 0:
        return None
    return (start - end) / start


def _too_low(trials: Sequence[StageTrial], stage: int, name: str) -> list[str]:
    ranked = [(lr, t, _fall(t)) for lr, t in _by_lr(trials, name, (TrialStatus.completed,))]
    ranked = [(lr, t, fall) for lr, t, fall in ranked if fall is not None]
    block: list[float] = []
    for _, _, fall in ranked:
        if fall is None or fall >= LOW_FALL:
            break
        block.append(fall)
    if len(block) < MIN_TRIALS:
        return []
    threshold = ranked[len(block) - 1][0]
    n = len(block)
    return [
        f"stage {stage}: {name} ≤ {threshold:.2g}: the loss fell less than {LOW_FALL:.0%} in {n} of {n} trials "
        f"(the largest fall: {max(block):.1%}): too low"
    ]


def _best(trials: Sequence[StageTrial], minimize: bool) -> list[StageTrial]:
    done = [t for t in trials if t.status == TrialStatus.completed and t.value is not None]
    return sorted(done, key=lambda t: (t.value or 0.0) if minimize else -(t.value or 0.0))


def _overfitting(trials: Sequence[StageTrial], stage: int, minimize: bool) -> list[str]:
    pairs = []
    for trial in _best(trials, minimize):
        train, val = _number(trial.metrics.get("train_accuracy")), _number(trial.metrics.get("val_accuracy"))
        if train is not None and val is not None:
            pairs.append((train, val))
        if len(pairs) == TOP:
            break
    if not pairs:
        return []
    train = sum(p[0] for p in pairs) / len(pairs)
    val = sum(p[1] for p in pairs) / len(pairs)
    if train - val <= GAP:
        return []
    best = f"best {len(pairs)} trials'" if len(pairs) > 1 else "best trial's"
    return [
        f"stage {stage}: overfitting: the {best} training accuracy is {train:.2f} against {val:.2f} on "
        f"validation (a gap of {train - val:.2f}): raise reg or dropout"
    ]


def _on_border(trials: Sequence[StageTrial], stage: int, space: Space, original: Space, minimize: bool) -> list[str]:
    best = _best(trials, minimize)
    if not best:
        return []
    warnings = []
    for name, param in space.items():
        value = _number(best[0].params.get(name))
        if isinstance(param, CategoricalParam) or value is None:
            continue
        side = border_side(param.to_unit(value))
        if side is not None:
            orig = original.get(name, param)
            assert not isinstance(orig, CategoricalParam)
            index = 0 if side == "lower" else 1
            warnings.append(border_warning(stage, name, value, side, param.bounds()[index], orig.bounds()[index]))
    return warnings


def border_side(unit: float, border: float = BORDER_FRACTION) -> str | None:
    """``"lower"`` or ``"upper"`` when a value at ``unit`` (0 and 1 are its axis's bounds,
    in its scale) lies on that border of the range; else ``None``."""
    if unit <= border:
        return "lower"
    if unit >= 1 - border:
        return "upper"
    return None


def border_warning(stage: int, name: str, value: float, side: str, bound: float, orig: float) -> str:
    """The sentence for a best ``value`` of ``name`` on the ``side`` border (``bound``) of
    its range in stage ``stage``; ``orig`` is the sweep's own bound on that side."""
    if bound == orig:
        return (
            f"stage {stage}: the best {name} = {value:.4g} lies on the {side} border of its range, "
            f"which is the original bound {orig:.4g}; consider widening the space"
        )
    return (
        f"stage {stage}: the best {name} = {value:.4g} lies on the {side} border of its range "
        f"({bound:.4g}); the next stage extends that side towards {orig:.4g}"
    )
