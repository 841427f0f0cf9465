"""The search policy: which designer serves each stage of a sweep, what a designer that
learns has seen, and what a stage change derives.

As OSS Vizier's ``DesignerPolicy`` does, this glues storage to the designers: it reads
trials through :class:`Trials`, which the store implements in the caller's transaction,
brings a designer up to date and asks it. Designers know nothing of storage, and neither
does this module: it imports nothing from FastAPI, SQLAlchemy or httpx.

Ownership and locking: one :class:`SearchPolicy` serves one process (one ``Store``) and
keeps in memory, and only there, a plan per started stage and the learning designers of
recent stages. Every call about a sweep is made under that sweep's lock (the caller's
transaction holds it), so one claim at a time asks each designer and tells it what
changed; calls about different sweeps run at once, and the tables of designers are guarded
by a lock of their own. Nothing here is persisted: a process that starts afresh, or that
evicted a designer, rebuilds it by showing it every finished trial again. Several processes
(API replicas on one database) each keep their own: a plan never changes once its stage has
started, a designer that does not learn depends only on a trial's index in its stage (which
the stage's budget row hands out under the sweep's lock), and a learning designer reads,
before each suggestion, whatever finished since it last looked, whichever process finished
it. So no answer depends on which process serves a claim being the one that served the last.

Errors: whatever a designer or the narrowing raises (a space it cannot model, a memory it
cannot allocate) comes out as :class:`SearchFailed`, naming the sweep and the stage: that
sweep cannot produce trials, and the caller ends it instead of failing the request (and
every other sweep's claims with it). What the ``Trials`` reads raise (a database error)
passes through unchanged: it says nothing about the sweep.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence, Set
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from hypersweep.service.search.base import Designer, Observation, Params, SearchConfig
from hypersweep.service.search.registry import DESIGNERS, make_designer
from hypersweep.service.search.space import Space, dump_space, load_space
from hypersweep.service.search.stages import narrow
from hypersweep.service.statuses import TrialStatus

__all__ = [
    "LEARNERS_KEPT",
    "PLANS_KEPT",
    "FinishedTrial",
    "NextStage",
    "SearchFailed",
    "SearchPolicy",
    "StageChange",
    "StagePlan",
    "StageSetup",
    "Trials",
]

#: Learning designers kept in memory, one per sweep stage; the least recently used goes first.
LEARNERS_KEPT = 64
#: Started stages whose plan is kept in memory (all are dropped once this many are).
PLANS_KEPT = 4096
#: The most characters of a designer's error kept in the sweep's warning.
_ERROR_CHARS = 500


class SearchFailed(Exception):
    """The search of stage ``stage`` of sweep ``sweep_id`` raised: the sweep cannot produce
    trials. ``str()`` is a sentence for the sweep's warnings, with the error's text."""

    def __init__(self, sweep_id: int, stage: int, cause: BaseException) -> None:
        text = f"{type(cause).__name__}: {cause}"
        if len(text) > _ERROR_CHARS:
            text = text[: _ERROR_CHARS - 1] + "…"
        super().__init__(f"stage {stage}: the search could not produce trials, so the sweep failed ({text})")
        self.sweep_id = sweep_id
        self.stage = stage


@contextmanager
def _searching(sweep_id: int, stage: int) -> Iterator[None]:
    """Turn what a designer or the narrowing raises into :class:`SearchFailed`."""
    try:
        yield
    except Exception as exc:
        raise SearchFailed(sweep_id, stage, exc) from exc


@dataclass(frozen=True, slots=True)
class StageSetup:
    """What a started stage was set up with: its space as stored, its ``search`` section
    and its epochs."""

    space: dict[str, Any]
    search: dict[str, Any]
    epochs: int
    #: How many of the previous stage's best trials the stage starts from (later stages).
    top_k: int | None = None


@dataclass(frozen=True, slots=True)
class FinishedTrial:
    """A trial that has ended, as the policy reads it."""

    id: int
    params: Params
    status: str
    value: float | None
    stage: int | None = None


class Trials(Protocol):
    """What the policy reads of a sweep, in the caller's transaction (which holds the
    sweep's lock). The store implements it; ``stage`` is a stage's index."""

    def stage_setup(self, sweep_id: int, stage: int) -> StageSetup:
        """The setup of a stage that has started."""
        ...

    def finished_since(self, sweep_id: int, stage: int, seen: Set[int]) -> list[FinishedTrial]:
        """The finished trials of stages ``0 .. stage`` whose ids are not in ``seen``, in
        ``number`` order."""
        ...

    def active_params(self, sweep_id: int, stage: int) -> list[Params]:
        """The params of the stage's queued and running trials, in ``number`` order."""
        ...

    def top_params(self, sweep_id: int, stage: int, k: int, *, minimize: bool) -> list[Params]:
        """The params of the stage's ``k`` best completed trials with a value, best first
        (the lower ``number`` first on ties)."""
        ...

    def top_results(self, sweep_id: int, stage: int, k: int, *, minimize: bool) -> list[tuple[float, Params]]:
        """:meth:`top_params` with each trial's value: ``(value, params)``, best first."""
        ...

    def imported(self, sweep_id: int) -> list[FinishedTrial]:
        """The finished trials of the sweeps it warm-starts from whose params lie in its
        space (``warm_start``), in a fixed order; none without a warm start."""
        ...


@dataclass(frozen=True)
class StagePlan:
    """What never changes about a started stage: its epochs, its space and search, and,
    unless its designer learns, that designer (whose suggestions then depend only on
    their index in the stage)."""

    sweep_id: int
    stage: int
    epochs: int
    minimize: bool
    space: Space
    config: SearchConfig
    #: ``None`` when the stage's designer learns: :meth:`SearchPolicy.suggest` keeps that one.
    designer: Designer | None
    top_k: int | None = None


@dataclass(frozen=True, slots=True)
class NextStage:
    """The stage about to start: its index, ``search`` section, trial budget and ``top_k``."""

    index: int
    search: dict[str, Any]
    trials: int
    top_k: int


@dataclass(frozen=True, slots=True)
class StageChange:
    """What a stage starts with: its space (as stored), its trial budget, and warnings for
    the sweep."""

    space: dict[str, Any]
    trials: int
    warnings: list[str]


@dataclass
class _Learner:
    """A learning designer kept between claims, and the ids of the finished trials it has
    been shown (told, or passed over as failed or outside its space)."""

    designer: Designer
    seen: set[int] = field(default_factory=set)
    #: Whether it has been shown the sweep's imported trials (a warm start).
    warmed: bool = False


class SearchPolicy:
    """Designers for the stages of sweeps, kept in memory between claims."""

    def __init__(self) -> None:
        self._plans: dict[tuple[int, int], StagePlan] = {}
        self._learners: OrderedDict[tuple[int, int], _Learner] = OrderedDict()
        self._learners_lock = threading.Lock()

    def plan(self, trials: Trials, sweep_id: int, stage: int, *, minimize: bool) -> StagePlan:
        """The plan of a started stage: read through ``trials`` once per process, then
        from memory (a dictionary's reads and writes are atomic, so no lock is taken)."""
        key = (sweep_id, stage)
        plan = self._plans.get(key)
        if plan is None:
            setup = trials.stage_setup(sweep_id, stage)
            with _searching(sweep_id, stage):
                space = load_space(setup.space)
                config = SearchConfig.model_validate(setup.search)
                designer = None
                if not DESIGNERS[config.kind].learns:
                    designer = make_designer(space, config=config, stage=stage, minimize=minimize)
            plan = StagePlan(sweep_id, stage, setup.epochs, minimize, space, config, designer, setup.top_k)
            if len(self._plans) >= PLANS_KEPT:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def suggest(self, trials: Trials, plan: StagePlan, start: int, count: int) -> list[Params]:
        """Params for the stage's trials ``start .. start + count - 1``. A designer that
        learns is first shown, through ``trials``, the trials of this stage and the ones
        before that finished since it last looked (every finished trial, in ``number``
        order, when it is built afresh), and this stage's queued and running trials."""
        if plan.designer is not None:
            with _searching(plan.sweep_id, plan.stage):
                return plan.designer.suggest(start, count)
        learner = self._learner(trials, plan)
        imported: list[Observation] = []
        if not learner.warmed:
            # A warm start's results first, as if they had finished before any of this sweep's.
            imported = self._observations(trials.imported(plan.sweep_id))
            learner.warmed = True
        finished = trials.finished_since(plan.sweep_id, plan.stage, learner.seen)
        learner.seen.update(trial.id for trial in finished)
        active = trials.active_params(plan.sweep_id, plan.stage)
        with _searching(plan.sweep_id, plan.stage):
            learner.designer.update(imported + self._observations(finished), active)
            return learner.designer.suggest(start, count)

    def next_stage(
        self,
        trials: Trials,
        *,
        sweep_id: int,
        minimize: bool,
        original: dict[str, Any],
        ended: int,
        ended_space: dict[str, Any],
        following: NextStage,
    ) -> StageChange:
        """What ``following`` starts with once stage ``ended`` (whose space was
        ``ended_space``) is done: that space narrowed, axis by axis in its scale, around
        the ``top_k`` best trials of ``ended`` and clipped to the sweep's ``original``
        space; its budget, cut to what its grid holds; and warnings for a best value on a
        border and for a budget cut."""
        top = trials.top_params(sweep_id, ended, following.top_k, minimize=minimize)
        if ended == 0:
            top = self._with_imported(trials, sweep_id, top, following.top_k, minimize=minimize)
        with _searching(sweep_id, following.index):
            narrowed = narrow(load_space(ended_space), original=load_space(original), top=top, stage=ended)
            capacity = make_designer(
                narrowed.space,
                config=SearchConfig.model_validate(following.search),
                stage=following.index,
                minimize=minimize,
            ).capacity()
        warnings = list(narrowed.warnings)
        budget = following.trials
        if capacity is not None and budget > capacity:
            warnings.append(
                f"stage {following.index} asks for {budget} trials but its grid has {capacity}; it runs {capacity}"
            )
            budget = capacity
        return StageChange(space=dump_space(narrowed.space), trials=budget, warnings=warnings)

    @staticmethod
    def _with_imported(trials: Trials, sweep_id: int, top: list[Params], k: int, *, minimize: bool) -> list[Params]:
        """The ``k`` best of the first stage's ``top`` trials and the sweep's imported
        results (a warm start), best first; the stage's own first on ties."""
        imported = [t for t in trials.imported(sweep_id) if t.status == TrialStatus.completed and t.value is not None]
        if not imported:
            return top
        sign = 1.0 if minimize else -1.0
        ranked = [
            (sign * value, 0, i, params)
            for i, (value, params) in enumerate(trials.top_results(sweep_id, 0, k, minimize=minimize))
        ]
        ranked += [(sign * t.value, 1, i, t.params) for i, t in enumerate(imported) if t.value is not None]
        ranked.sort(key=lambda entry: entry[:3])
        return [params for *_, params in ranked[:k]]

    def _learner(self, trials: Trials, plan: StagePlan) -> _Learner:
        """The stage's learning designer: the one kept, or a new one (dropping the sweep's
        designers of earlier stages, which no claim asks again). A new one that starts
        from the previous stage's best trials is handed them, read through ``trials``."""
        key = (plan.sweep_id, plan.stage)
        with self._learners_lock:
            learner = self._learners.get(key)
            if learner is not None:
                self._learners.move_to_end(key)
                return learner
        with _searching(plan.sweep_id, plan.stage):
            designer = make_designer(plan.space, config=plan.config, stage=plan.stage, minimize=plan.minimize)
        if designer.starts_from_previous and plan.stage > 0:
            top = trials.top_params(plan.sweep_id, plan.stage - 1, plan.top_k or 1, minimize=plan.minimize)
            with _searching(plan.sweep_id, plan.stage):
                designer.start_from(top)
        learner = _Learner(designer)
        with self._learners_lock:
            for earlier in range(plan.stage):
                self._learners.pop((plan.sweep_id, earlier), None)
            self._learners[key] = learner
            while len(self._learners) > LEARNERS_KEPT:
                self._learners.popitem(last=False)
        return learner

    @staticmethod
    def _observations(finished: Sequence[FinishedTrial]) -> list[Observation]:
        """What a designer is told of ``finished``: results, divergences and prunings;
        failed and cancelled trials are passed over."""
        observations: list[Observation] = []
        for trial in finished:
            if trial.status == TrialStatus.completed and trial.value is not None:
                observations.append(Observation(trial.params, trial.value, stage=trial.stage))
            elif trial.status == TrialStatus.diverged:
                observations.append(Observation(trial.params, trial.value, diverged=True, stage=trial.stage))
            elif trial.status == TrialStatus.pruned:
                observations.append(Observation(trial.params, trial.value, pruned=True, stage=trial.stage))
        return observations
