"""Submit-time checks of a sweep's learning-rate schedule, which spans several settings:
``lr_schedule``, ``lr_gamma``, ``lr_step_epochs`` and the trials' ``epochs``.

Each setting may be fixed in the ``trainer`` section, tuned in the ``space`` (a tuned
value wins), or left at the trainer's default; every value a trial could get is checked
against every schedule it could run with, so that no trial of the sweep gets a schedule
it cannot follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypersweep.service.schemas import SweepSpec
from hypersweep.service.search.space import CategoricalParam, FloatParam, IntParam
from hypersweep.trainer.config import TrainerConfig, schedule_problems

__all__ = ["check_schedule"]

Loc = tuple[str | int, ...]
_DEFAULTS = TrainerConfig()


@dataclass(frozen=True)
class _Value:
    """One value a setting can take in the sweep, and where the document gives it
    (``None``: the trainer's default)."""

    value: Any
    loc: Loc | None


def check_schedule(spec: SweepSpec, warnings: list[str]) -> list[tuple[Loc, str]]:
    """The problems of ``spec``'s learning-rate schedule as ``(location, sentence)``
    pairs; appends to ``warnings`` a sentence for each companion setting fixed in the
    ``trainer`` section that no schedule of the sweep reads. ``spec.trainer`` holds checked
    values (see ``service.validation``)."""
    schedules = _values(spec, "lr_schedule")
    gammas = _values(spec, "lr_gamma")
    steps = _values(spec, "lr_step_epochs")
    errors: list[tuple[Loc, str]] = []
    # The extreme values are the ones a rule can refuse: the largest gamma, and a missing
    # lr_step_epochs (None) before any number. Values of the wrong type are reported by
    # the checks of each setting alone.
    numeric = [item for item in gammas if _is_number(item.value)]
    gamma = max(numeric, key=lambda item: item.value) if numeric else _Value(None, None)
    step = next((item for item in steps if item.value is None), steps[0])
    for schedule in schedules:
        for setting, sentence in schedule_problems(schedule.value, lr_gamma=gamma.value, lr_step_epochs=step.value):
            where = gamma.loc if setting == "lr_gamma" else step.loc
            errors.append((where or schedule.loc or ("trainer", "lr_schedule"), sentence))
    if any(schedule.value == "step" for schedule in schedules):
        errors += _step_fits(spec, steps)
    names = {item.value for item in schedules}
    for name, readers in (("lr_gamma", {"step", "exponential", "inverse_time"}), ("lr_step_epochs", {"step"})):
        if name in spec.trainer and name not in spec.space and not names & readers:
            warnings.append(f"trainer.{name} is not used: no trial's lr_schedule ({', '.join(sorted(names))}) reads it")
    return _unique(errors)


def _step_fits(spec: SweepSpec, steps: list[_Value]) -> list[tuple[Loc, str]]:
    """A ``step`` schedule whose every ``lr_step_epochs`` is at least every trial's epochs
    would never lower the rate: refuse it."""
    numbers = [item for item in steps if _is_whole(item.value)]
    epochs = [item.value for item in _values(spec, "epochs") if _is_whole(item.value)]
    if not numbers or not epochs:
        return []
    shortest = min(numbers, key=lambda item: item.value)
    longest = max(epochs)
    if shortest.value < longest:
        return []
    where = "the space's epochs" if "epochs" in spec.space else "stages[].epochs"
    return [
        (
            shortest.loc or ("trainer", "lr_step_epochs"),
            f"lr_step_epochs is {shortest.value}, but no trial runs more than {longest} epochs ({where}): "
            f"the step schedule would never lower the learning rate; use lr_step_epochs below {longest}",
        )
    ]


def _values(spec: SweepSpec, name: str) -> list[_Value]:
    """Every value setting ``name`` can take in the sweep; for a numeric axis, its two ends."""
    axis = spec.space.get(name)
    if isinstance(axis, CategoricalParam):
        return [_Value(value, ("space", name, "values", index)) for index, value in enumerate(axis.values)]
    if isinstance(axis, FloatParam | IntParam):
        return [_Value(axis.low, ("space", name, "low")), _Value(axis.high, ("space", name, "high"))]
    if name == "epochs":
        return [_Value(stage.epochs, ("stages", index, "epochs")) for index, stage in enumerate(spec.stages)]
    if name in spec.trainer:
        return [_Value(spec.trainer[name], ("trainer", name))]
    return [_Value(getattr(_DEFAULTS, name), None)]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unique(errors: list[tuple[Loc, str]]) -> list[tuple[Loc, str]]:
    return list(dict.fromkeys(errors))
