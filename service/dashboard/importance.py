"""Which parameters matter: Optuna's importance evaluators over a set of completed trials.

Trials in, importances out; nothing here reads the database. Every numeric axis is given to
the evaluator in its own scale (a ``log`` axis as ``log10`` of the value, over
``log10(low)..log10(high)``), because fANOVA weighs a parameter's effect by how much of the
axis it covers: on the raw values of ``lr`` from 1e-6 to 1, nearly all of the axis lies
above 0.1 and the decades below would count for almost nothing.

The evaluators get at most ``MAX_TRIALS`` trials, an even, seeded sample of the completed
ones, as Optuna ``FrozenTrial`` objects handed over directly (no study storage). Optuna's
pure-Python fANOVA costs time in the number of trials times the size of its trees, so the
forest is also kept small (``FANOVA_TREES`` trees, ``FANOVA_DEPTH`` levels), which keeps an
answer for a sweep of any size within a second while the share of each parameter changes
little.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hypersweep.service.search.space import CategoricalParam, Param

__all__ = [
    "EVALUATORS",
    "FANOVA_DEPTH",
    "FANOVA_TREES",
    "MAX_TRIALS",
    "Importances",
    "axis_scale",
    "param_importances",
]

#: The most completed trials one evaluation looks at; beyond it, an even seeded sample.
MAX_TRIALS = 1000
#: fANOVA's forest: Optuna's default (64 trees, 64 levels) takes minutes on 1,000 trials.
FANOVA_TREES = 32
FANOVA_DEPTH = 5
_SEED = 0


def _fanova() -> Any:
    from optuna.importance import FanovaImportanceEvaluator

    return FanovaImportanceEvaluator(n_trees=FANOVA_TREES, max_depth=FANOVA_DEPTH, seed=_SEED)


def _ped_anova() -> Any:
    import warnings

    from optuna.exceptions import ExperimentalWarning
    from optuna.importance import PedAnovaImportanceEvaluator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return PedAnovaImportanceEvaluator()


def _mean_decrease_impurity() -> Any:
    from optuna.importance import MeanDecreaseImpurityImportanceEvaluator

    return MeanDecreaseImpurityImportanceEvaluator(n_trees=FANOVA_TREES, max_depth=FANOVA_DEPTH, seed=_SEED)


#: The evaluators one may ask for, by name; the first is the default.
EVALUATORS: dict[str, Callable[[], Any]] = {
    "fanova": _fanova,
    "ped_anova": _ped_anova,
    "mean_decrease_impurity": _mean_decrease_impurity,
}


@dataclass(frozen=True)
class Importances:
    """The outcome of one evaluation: ``shares`` (parameter -> share of the explained
    variation, summing to 1, largest first) or ``None`` with ``note`` saying why not."""

    trials: int
    used: int
    shares: dict[str, float] | None
    note: str | None = None


def axis_scale(param: Param) -> str:
    """The scale an axis is evaluated in: ``log10``, ``linear`` or ``categorical``."""
    if isinstance(param, CategoricalParam):
        return "categorical"
    return "log10" if param.scale == "log" else "linear"


def param_importances(
    space: Mapping[str, Param],
    params: Sequence[Mapping[str, Any]],
    values: Sequence[float],
    *,
    minimize: bool,
    evaluator: str = "fanova",
) -> Importances:
    """The importance of each axis of ``space`` for ``values``, the objective of the
    completed trials whose parameters are ``params`` (entry ``i`` of both is one trial).

    Trials without a finite value, or without a value for every axis, are left out. Fewer
    than two trials, or a space of one axis, give ``shares=None`` and a note; so does an
    objective that never varies. ``evaluator`` is a key of ``EVALUATORS``."""
    rows = [
        (p, float(v))
        for p, v in zip(params, values, strict=True)
        if isinstance(v, int | float) and math.isfinite(v) and all(p.get(name) is not None for name in space)
    ]
    total = len(rows)
    if len(space) < 2:
        return Importances(total, 0, None, "One parameter: there is nothing to compare it with.")
    if total < 2:
        return Importances(total, 0, None, f"Needs at least 2 completed trials with a value; there are {total}.")
    if len({v for _, v in rows}) == 1:
        return Importances(total, 0, None, "Every completed trial has the same value: no parameter changes it.")
    if total > MAX_TRIALS:
        rows = random.Random(_SEED).sample(rows, MAX_TRIALS)

    import optuna
    from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    scaled = [{name: _scaled(space[name], p[name]) for name in space} for p, _ in rows]
    distributions: dict[str, BaseDistribution] = {}
    for name, param in space.items():
        column = [s[name] for s in scaled]
        if isinstance(param, CategoricalParam):
            # Values a trial holds outside the declared ones (a warm start, an older space)
            # still count, as categories of their own.
            choices = list(dict.fromkeys([*param.values, *column]))
            distributions[name] = CategoricalDistribution(choices)
        else:
            low, high = _scaled(param, param.low), _scaled(param, param.high)
            distributions[name] = FloatDistribution(min(low, *column), max(high, *column))
    trials = [
        optuna.trial.create_trial(params=s, distributions=distributions, value=v)
        for s, (_, v) in zip(scaled, rows, strict=True)
    ]
    try:
        try:
            view: Any = _Trials(trials, minimize)
            raw = optuna.importance.get_param_importances(view, evaluator=EVALUATORS[evaluator]())
        except (AttributeError, TypeError):
            # An Optuna that reads more of a study than _Trials has: give it a real one.
            study = optuna.create_study(direction="minimize" if minimize else "maximize")
            study.add_trials(trials)
            raw = optuna.importance.get_param_importances(study, evaluator=EVALUATORS[evaluator]())
    except RuntimeError as exc:  # fANOVA: every tree of the forest is flat
        return Importances(total, len(rows), None, f"The objective does not vary enough to tell ({exc}).")
    except ImportError as exc:  # an install that left out a base dependency
        return Importances(total, len(rows), None, f"The {evaluator} evaluator cannot run here: {exc}")
    shares = {name: float(share) for name, share in raw.items()}
    return Importances(total, len(rows), dict(sorted(shares.items(), key=lambda kv: -kv[1])))


class _Trials:
    """What Optuna's evaluators read of a study (its trials, by state, and its direction),
    over a list of trials: an in-memory study would deep-copy every trial on the way in,
    which costs more than the evaluation itself."""

    def __init__(self, trials: list[Any], minimize: bool) -> None:
        from optuna.study import StudyDirection

        self._trials = trials
        self.direction = StudyDirection.MINIMIZE if minimize else StudyDirection.MAXIMIZE
        self.directions = [self.direction]

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[Any]:
        return [t for t in self._trials if states is None or t.state in states]

    def _is_multi_objective(self) -> bool:
        return False


def _scaled(param: Param, value: Any) -> Any:
    if isinstance(param, CategoricalParam):
        return value
    number = float(value)
    return math.log10(number) if param.scale == "log" and number > 0 else number
