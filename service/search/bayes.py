"""Bayesian search: Optuna's TPE or GP sampler, asked and told on an in-memory study that
mirrors what the stage knows (finished trials as results, queued and running ones as pending).

The mirror lives as long as the designer: ``update`` adds only what is new, so a suggestion
costs the sampler's own work, not a replay of the sweep. Log axes become ``log=True``
distributions, so both samplers model them in log space, as random and grid search do.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, GPSampler, TPESampler
from optuna.trial import TrialState, create_trial

from hypersweep.service.search.base import Designer, Observation, Params, SearchConfig
from hypersweep.service.search.space import CategoricalParam, FloatParam, IntParam, Param, ParamValue, Space

__all__ = ["GP_INT_VALUES", "N_STARTUP_TRIALS", "BayesDesigner"]

#: Results the model needs before it proposes; until then trials follow a Sobol sequence.
N_STARTUP_TRIALS = 10
#: Fresh asks tried when a suggestion repeats one that is pending (a small discrete space).
_DUPLICATE_RETRIES = 5

_Key = tuple[tuple[str, str, ParamValue], ...]

# Optuna announces every study it creates at INFO; the mirror is an internal detail.
optuna.logging.set_verbosity(optuna.logging.WARNING)


#: The Optuna major versions whose private ``_truncnorm._log_ndtr`` was checked to give
#: SciPy's values (``tests/service/search/test_bayes.py``); pyproject bounds Optuna to them.
_LOG_NDTR_TESTED_MAJORS = ("4",)


def _use_compiled_log_ndtr() -> bool:
    """Optuna's TPE normalises every Parzen kernel with ``_truncnorm._log_ndtr``, a pure-Python
    port of SciPy's ``log_ndtr`` (Optuna does not require SciPy). On a large sweep that loop
    dominates a suggestion; SciPy's compiled function gives the same values
    (``tests/service/search/test_bayes.py`` checks it). The function is private, so it is
    replaced only on the Optuna major versions that check covered; without SciPy nothing
    changes. Returns whether it was replaced."""
    if optuna.__version__.split(".", 1)[0] not in _LOG_NDTR_TESTED_MAJORS:
        return False
    try:
        from optuna.samplers._tpe import _truncnorm
        from scipy.special import log_ndtr  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - SciPy comes with scikit-learn
        return False
    if not callable(getattr(_truncnorm, "_log_ndtr", None)):
        return False
    _truncnorm._log_ndtr = log_ndtr
    return True


_use_compiled_log_ndtr()


#: The most values an int axis may have for the GP sampler to model it as integers; a wider
#: one is modelled as a float axis, and its suggestions rounded. Optuna's GP lists every
#: value of a discrete axis (an axis of 2**40 integers asks for terabytes).
GP_INT_VALUES = 10_000


def distribution(param: Param, *, sampler: str = "tpe") -> BaseDistribution:
    """The Optuna distribution of one axis: log axes stay in log space."""
    if isinstance(param, CategoricalParam):
        return CategoricalDistribution(param.values)
    if isinstance(param, IntParam) and not (sampler == "gp" and param.high - param.low >= GP_INT_VALUES):
        return IntDistribution(param.low, param.high, log=param.scale == "log")
    return FloatDistribution(param.low, param.high, log=param.scale == "log")


def _key(params: Params) -> _Key:
    # The type is part of the key: 1, 1.0 and True are equal in Python but not as settings.
    return tuple((name, type(value).__name__, value) for name, value in sorted(params.items()))


def _normalise(param: Param, value: object) -> ParamValue | None:
    """``value`` as this axis holds it, or ``None`` when it lies outside the axis."""
    if isinstance(param, CategoricalParam):
        return next((v for v in param.values if type(v) is type(value) and v == value), None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(param, IntParam):
        if not float(value).is_integer():
            return None
        value = int(value)
    else:
        value = float(value)
    low, high = param.bounds()
    return value if low <= value <= high else None


class BayesDesigner(Designer):
    """``search.kind: bayes``: ``sampler: tpe`` (multivariate TPE) or ``sampler: gp`` (Gaussian
    process with log expected improvement), from Optuna, used through ask-and-tell.

    What the model sees, through ``update``:

    * a ``completed`` observation with a value is a result;
    * a ``diverged`` one is a bad result (this region explodes): it is told with the worst
      value among results so far, or its own value when that is worse (by at most the spread
      of the results, so one absurd loss does not flatten a GP's scale). Diverged trials
      that come before any result wait for one;
    * a ``pruned`` one (stopped early as a loser of its stage) is told as worse than any
      result so far: the worst result plus a twentieth of the spread of the results (its
      own partial value is not comparable). Pruned trials that come before any result wait
      for one;
    * other observations without a value (failed runs) are left out;
    * observations whose parameters lie outside this stage's space (an earlier stage's
      trials outside the narrowed space) are left out;
    * ``active`` trials (queued or running) are pending: TPE counts them as bad results for
      the moment (the constant liar), GP as fantasies of its batch acquisition, so parallel
      claims spread out instead of piling onto one point.

    Until the model holds ``N_STARTUP_TRIALS`` results (earlier stages' included), trial
    ``i`` of the stage is point ``i`` of a scrambled Sobol sequence seeded with ``(seed,
    stage)``: the start covers the space evenly, is the same whatever the claim order, and
    a parallel claim gets distinct points. After that, each ``suggest`` call asks a sampler
    seeded with ``(seed, stage, start)``, so the same results and claims in the same order
    give the same suggestions, in this process or in one that rebuilt the designer.
    """

    learns = True

    def __init__(self, space: Space, *, config: SearchConfig, stage: int, minimize: bool) -> None:
        super().__init__(space, config=config, stage=stage, minimize=minimize)
        self._distributions = {
            name: distribution(param, sampler=config.sampler) for name, param in sorted(space.items())
        }
        self._storage = optuna.storages.InMemoryStorage()
        self._study = optuna.create_study(
            storage=self._storage,
            direction="minimize" if minimize else "maximize",
            sampler=optuna.samplers.RandomSampler(seed=0),  # replaced before every suggestion
        )
        self._study_id = self._storage.get_study_id_from_name(self._study.study_name)
        #: Mirror trials in the RUNNING state, by parameters: the stage's queued and running
        #: trials, and suggestions not yet seen back as such.
        self._pending: dict[_Key, list[int]] = {}
        #: Diverged observations waiting for a first result to be ranked against.
        self._deferred: list[Observation] = []
        #: Best and worst result so far, as losses (lower is better whatever the mode);
        #: diverged trials do not move them, so a run of them cannot push the scale away.
        self._best: float | None = None
        self._worst: float | None = None
        #: Trials told as finished, diverged ones included: what the model learns from.
        self._results = 0

    @property
    def study(self) -> optuna.Study:
        """The in-memory mirror, to look at (what has been told, what is pending); changing
        it behind the designer's back is not supported."""
        return self._study

    # -- what the model knows ------------------------------------------------------------------

    def update(self, completed: Sequence[Observation], active: Sequence[Params]) -> None:
        """Tell the mirror the observations finished since the last call (each exactly once),
        and make ``active`` (every trial of the stage now queued or running) its pending set."""
        for observation in completed:
            params = self._inside(observation.params)
            if params is None:
                continue
            if observation.diverged or observation.pruned:
                self._deferred.append(
                    Observation(params, observation.value, diverged=observation.diverged, pruned=observation.pruned)
                )
            elif observation.value is not None:
                loss = self._loss(observation.value)
                self._tell(params, loss)
                self._best = loss if self._best is None else min(self._best, loss)
                self._worst = loss if self._worst is None else max(self._worst, loss)
        if self._worst is not None:
            for observation in self._deferred:
                if observation.pruned:
                    self._tell(observation.params, self._pruned_loss())
                else:
                    self._tell(observation.params, self._diverged_loss(observation.value))
            self._deferred.clear()
        self._set_pending(active)

    def _inside(self, params: Params) -> Params | None:
        inside: Params = {}
        for name, param in self.space.items():
            value = _normalise(param, params.get(name))
            if value is None:
                return None
            inside[name] = value
        return inside

    def _loss(self, value: float) -> float:
        return value if self.minimize else -value

    def _diverged_loss(self, value: float | None) -> float:
        assert self._best is not None and self._worst is not None
        if value is None:
            return self._worst
        return min(max(self._loss(value), self._worst), self._worst + (self._worst - self._best))

    def _pruned_loss(self) -> float:
        """Worse than every result so far, by a little: a pruned trial lost to its stage."""
        assert self._best is not None and self._worst is not None
        spread = self._worst - self._best
        return self._worst + (spread / 20 if spread > 0 else max(abs(self._worst), 1.0) * 1e-6)

    def _tell(self, params: Params, loss: float) -> None:
        value = loss if self.minimize else -loss
        trial_ids = self._pending.get(_key(params))
        if trial_ids:
            self._storage.set_trial_state_values(trial_ids.pop(), TrialState.COMPLETE, [value])
        else:
            template = create_trial(params=params, distributions=self._distributions, value=value)
            self._storage.create_new_trial(self._study_id, template_trial=template)
        self._results += 1

    def _set_pending(self, active: Sequence[Params]) -> None:
        wanted: dict[_Key, tuple[Params, int]] = {}
        for params in active:
            inside = self._inside(params)
            if inside is not None:
                key = _key(inside)
                wanted[key] = (inside, wanted.get(key, (inside, 0))[1] + 1)
        for key, trial_ids in self._pending.items():
            keep = wanted.get(key, ({}, 0))[1]
            while len(trial_ids) > keep:
                self._storage.set_trial_state_values(trial_ids.pop(), TrialState.FAIL)
        for key, (params, n) in wanted.items():
            while len(self._pending.get(key, [])) < n:
                self._add_pending(params)
        self._pending = {key: ids for key, ids in self._pending.items() if ids}

    def _add_pending(self, params: Params) -> None:
        template = create_trial(state=TrialState.RUNNING, params=params, distributions=self._distributions)
        trial_id = self._storage.create_new_trial(self._study_id, template_trial=template)
        self._pending.setdefault(_key(params), []).append(trial_id)

    # -- suggesting ---------------------------------------------------------------------------

    def suggest(self, start: int, count: int) -> list[Params]:
        """``count`` parameter sets for the stage's trials ``start ..``, each pending in the
        mirror from the moment it is suggested, so the next one in the batch avoids it."""
        if self._results < N_STARTUP_TRIALS:
            return [self._sobol(start + i) for i in range(count)]
        seed = int(np.random.SeedSequence([self.config.seed, self.stage, start, 0x6261]).generate_state(1)[0])
        self._study.sampler = self._sampler(seed)
        with self._one_thread() if self.config.sampler == "gp" else nullcontext():
            return [self._ask() for _ in range(count)]

    def _sobol(self, index: int) -> Params:
        # Imported here: SciPy's stats package takes over a second to load, which every
        # server start would otherwise pay before the first Bayesian stage needs it.
        from scipy.stats import qmc  # type: ignore[import-untyped]

        engine = qmc.Sobol(
            len(self.space), scramble=True, seed=np.random.default_rng([self.config.seed, self.stage, 0x736F])
        )
        if index:
            engine.fast_forward(index)
        params: Params = {}
        for (name, param), u in zip(sorted(self.space.items()), engine.random(1)[0], strict=True):
            if isinstance(param, CategoricalParam):
                params[name] = param.values[min(int(u * len(param.values)), len(param.values) - 1)]
            else:
                params[name] = param.cast(param.from_unit(float(u)))
        self._add_pending(params)
        return params

    def _sampler(self, seed: int) -> BaseSampler:
        if self.config.sampler == "gp":
            return GPSampler(seed=seed, n_startup_trials=N_STARTUP_TRIALS, warn_independent_sampling=False)
        return TPESampler(seed=seed, n_startup_trials=N_STARTUP_TRIALS, multivariate=True, constant_liar=True)

    @staticmethod
    def _one_thread() -> AbstractContextManager[object]:
        # The GP's many tiny L-BFGS-B and tensor steps run much slower when OpenBLAS
        # and OpenMP threads spin against each other (Optuna's own limit comes too late for
        # a BLAS already loaded); one thread each is the fast setting.
        try:
            from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            return nullcontext()
        limits: AbstractContextManager[object] = threadpool_limits(1)
        return limits

    def _ask(self) -> Params:
        for attempt in range(_DUPLICATE_RETRIES + 1):
            trial = self._study.ask(self._distributions)
            params = {name: self._cast(self.space[name], value) for name, value in sorted(trial.params.items())}
            key = _key(params)
            trial_id = self._storage.get_trial_id_from_study_id_trial_number(self._study_id, trial.number)
            if key not in self._pending or attempt == _DUPLICATE_RETRIES:
                self._pending[key] = [*self._pending.get(key, []), trial_id]
                return params
            self._storage.set_trial_state_values(trial_id, TrialState.FAIL)
        raise AssertionError("unreachable")

    @staticmethod
    def _cast(param: Param, value: ParamValue) -> ParamValue:
        if isinstance(param, FloatParam | IntParam):
            return param.cast(float(value))
        return value
