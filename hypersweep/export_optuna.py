"""A sweep as an Optuna study, so that optuna-dashboard, ``optuna.visualization`` and
``optuna.importance`` open it as they are.

Each finished trial becomes one Optuna trial, in the sweep's ``number`` order:

- its params, with one distribution per parameter in the axis's scale (``log=True`` for a
  ``log`` axis), the widest over the sweep's stages, so every stage's trials fit it;
- its state: completed → ``COMPLETE`` with the objective's value, pruned → ``PRUNED``,
  diverged, failed and cancelled → ``FAIL`` (Optuna has no word for those; the
  ``hypersweep_status`` user attribute keeps the difference);
- its curve's objective values as intermediate values, by epoch;
- user attributes: ``hypersweep_trial_id``, ``hypersweep_status``, ``stage``, ``number``,
  ``attempt``, ``metrics`` (every final metric) and ``error`` where there is one.

Queued and running trials are left out: a copy is a snapshot, and an Optuna trial left
``RUNNING`` in another storage would stay so for ever.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from hypersweep.worker.wire import Sweep, Trial, TrialCurve, encode_floats

__all__ = ["StudyExists", "export_study", "study_distributions"]

_STATES = {
    "completed": "COMPLETE",
    "pruned": "PRUNED",
    "diverged": "FAIL",
    "failed": "FAIL",
    "cancelled": "FAIL",
}


class StudyExists(ValueError):
    """The target storage holds a study of that name already."""


def export_study(
    sweep: Sweep,
    trials: Sequence[Trial],
    curves: Iterable[TrialCurve],
    storage: str,
    *,
    study_name: str | None = None,
) -> tuple[str, int]:
    """Write ``sweep`` with its ``trials`` (and their ``curves``) to a new study in the
    Optuna storage ``storage`` (a database URL such as ``sqlite:///study.db``). Returns the
    study's name (``study_name``, or the sweep's name and id) and how many trials it holds.
    Raises :class:`StudyExists` when the storage has a study of that name already."""
    import optuna
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial, TrialState

    name = study_name or f"{sweep.name}-{sweep.id}"
    direction = "maximize" if sweep.objective.mode == "max" else "minimize"
    try:
        study = optuna.create_study(storage=storage, study_name=name, direction=direction)
    except optuna.exceptions.DuplicatedStudyError:
        raise StudyExists(f"{storage} holds a study named {name!r} already; choose another name") from None
    study.set_user_attr("hypersweep_sweep_id", sweep.id)
    study.set_user_attr("objective_metric", sweep.objective.metric)
    if sweep.program is not None:
        study.set_user_attr("program", sweep.program)

    distributions: dict[str, BaseDistribution] = study_distributions(sweep)
    by_id = {curve.id: curve for curve in curves}
    frozen = []
    for trial in trials:
        state_name = _STATES.get(trial.status)
        if state_name is None:
            continue
        value = trial.value
        if state_name == "COMPLETE" and (value is None or not math.isfinite(value)):
            state_name, value = "FAIL", None
        params = {key: value for key, value in trial.params.items() if key in distributions}
        attrs: dict[str, Any] = {
            "hypersweep_trial_id": trial.id,
            "hypersweep_status": trial.status,
            "stage": trial.stage,
            "number": trial.number,
            "attempt": trial.attempt,
            "metrics": dict(encode_floats(trial.metrics)),
        }
        if trial.error:
            attrs["error"] = trial.error
        # A trial cancelled before it started has only its creation time.
        started = trial.started_at or trial.created_at
        frozen.append(
            FrozenTrial(
                number=trial.number,  # the storage numbers the study's trials itself
                trial_id=trial.id,
                state=TrialState[state_name],
                value=value if state_name == "COMPLETE" else None,
                datetime_start=started,
                datetime_complete=trial.finished_at or started,
                params=params,
                distributions={key: distributions[key] for key in params},
                user_attrs=attrs,
                system_attrs={},
                intermediate_values=_intermediate(by_id.get(trial.id), sweep.objective.metric),
            )
        )
    study.add_trials(frozen)
    return name, len(frozen)


def study_distributions(sweep: Sweep) -> dict[str, Any]:
    """One Optuna distribution per parameter of the sweep, in the axis's scale: numeric
    axes span the lowest ``low`` to the highest ``high`` over the stages' spaces,
    categorical ones every value any stage offers, in the order first seen."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    axes: dict[str, dict[str, Any]] = {}
    spaces = [sweep.spec.get("space") or {}, *(stage.space or {} for stage in sweep.stages)]
    for space in spaces:
        for name, axis in space.items():
            seen = axes.get(name)
            if seen is None:
                axes[name] = {**axis, "values": list(axis.get("values", []))}
            elif axis["type"] == "categorical" and seen["type"] == "categorical":
                seen["values"] += [value for value in axis["values"] if value not in seen["values"]]
            elif axis["type"] == seen["type"]:
                seen["low"], seen["high"] = min(seen["low"], axis["low"]), max(seen["high"], axis["high"])
    distributions: dict[str, Any] = {}
    for name, axis in axes.items():
        log = axis.get("scale") == "log"
        if axis["type"] == "float":
            distributions[name] = FloatDistribution(float(axis["low"]), float(axis["high"]), log=log)
        elif axis["type"] == "int":
            distributions[name] = IntDistribution(int(axis["low"]), int(axis["high"]), log=log)
        else:
            distributions[name] = CategoricalDistribution(axis["values"])
    return distributions


def _intermediate(curve: TrialCurve | None, metric: str) -> dict[int, float]:
    if curve is None:
        return {}
    values = curve.metrics.get(metric, ())
    return {step: value for step, value in zip(curve.step, values, strict=False) if value is not None}
