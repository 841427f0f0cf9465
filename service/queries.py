"""The statements of the worker protocol's hot path (claim, heartbeat, report, finish),
built once.

SQLAlchemy builds, keys and looks up a statement object in its compiled cache every time
one is constructed; for the short statements a worker's requests run, that is much of
their cost. Statements made once here keep their cache key memoised, so an execution is a
dictionary lookup plus the driver's work. Values travel as bound
parameters: ``b_``-prefixed names in ``WHERE`` clauses, and for the ``UPDATE`` statements
without ``values()`` the keys of the parameter dictionary, which become the ``SET`` clause.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hypersweep.service.models import CurvePoint, Stage, Sweep, Trial
from hypersweep.service.statuses import ACTIVE, TrialStatus

__all__ = [
    "ACTIVE_COUNTS",
    "BUMP_TRIALS_CREATED",
    "HELD_TRIAL",
    "INSERT_TRIALS",
    "LOCK_SWEEP",
    "QUEUED_TRIALS",
    "STAGE_BUDGET",
    "TAKE_BUDGET",
    "TRIALS_CREATED",
    "TRIALS_TO_FINISH",
    "UPDATE_TRIAL",
    "upsert_points",
]

#: The sweep's row, locked: what a claim needs of it. Parameters: ``b_sweep_id``.
LOCK_SWEEP = (
    select(
        Sweep.id,
        Sweep.status,
        Sweep.parallelism,
        Sweep.max_attempts,
        Sweep.current_stage,
        Sweep.trials_created,
        Sweep.minimize,
    )
    .where(Sweep.id == bindparam("b_sweep_id"))
    .with_for_update()
)

#: How many of the sweep's trials run, wait, and hold an expired lease, through the
#: ``(sweep_id, status, number)`` index. Parameters: ``b_sweep_id``, ``b_now``.
ACTIVE_COUNTS = select(
    func.count().filter(Trial.status == TrialStatus.running),
    func.count().filter(Trial.status == TrialStatus.queued),
    func.count().filter(Trial.lease_expires_at < bindparam("b_now")),
).where(Trial.sweep_id == bindparam("b_sweep_id"), Trial.status.in_(ACTIVE))

#: Take ``b_slots`` trials of budget from a stage, only if it has them; returns the
#: stage's new ``generated`` and its ``enqueued``. Parameters: ``b_sweep_id``, ``b_stage``, ``b_slots``.
TAKE_BUDGET = (
    update(Stage)
    .where(
        Stage.sweep_id == bindparam("b_sweep_id"),
        Stage.index == bindparam("b_stage"),
        Stage.generated + bindparam("b_slots") <= Stage.trials,
    )
    .values(generated=Stage.generated + bindparam("b_slots"))
    .returning(Stage.generated, Stage.enqueued)
)

#: A stage's budget and how much of it is handed out. Parameters: ``b_sweep_id``, ``b_stage``.
STAGE_BUDGET = select(Stage.generated, Stage.trials, Stage.enqueued).where(
    Stage.sweep_id == bindparam("b_sweep_id"), Stage.index == bindparam("b_stage")
)

#: Whole queued trials of a sweep, the first ``b_slots`` in ``number`` order, their rows
#: locked; rows another transaction holds are passed over. Parameters: ``b_sweep_id``,
#: ``b_slots``.
QUEUED_TRIALS = (
    select(*Trial.__table__.columns)
    .where(Trial.sweep_id == bindparam("b_sweep_id"), Trial.status == TrialStatus.queued)
    .order_by(Trial.number)
    .limit(bindparam("b_slots"))
    .with_for_update(skip_locked=True)
)

#: New trials, executed with one parameter dictionary per trial; returns their ids in order.
INSERT_TRIALS = insert(Trial).returning(Trial.id, sort_by_parameter_order=True)

#: The sweep's count of trials created: the next one's number. Parameters: ``b_sweep_id``.
TRIALS_CREATED = select(Sweep.trials_created).where(Sweep.id == bindparam("b_sweep_id"))

#: Parameters: ``b_sweep_id``, ``b_slots``.
BUMP_TRIALS_CREATED = (
    update(Sweep)
    .where(Sweep.id == bindparam("b_sweep_id"))
    .values(trials_created=Sweep.trials_created + bindparam("b_slots"))
)

#: What a report or heartbeat needs of a trial, its row locked. Parameters: ``b_trial_id``.
HELD_TRIAL = (
    select(Trial.status, Trial.lease_token, Trial.lease_expires_at, Trial.metrics, Trial.sweep_id, Trial.stage)
    .where(Trial.id == bindparam("b_trial_id"))
    .with_for_update()
)

#: Whole trials, their rows locked (in id order), each with whether its stage has handed
#: out all of its budget (then its end may end the stage). Parameters: ``b_trial_ids``.
TRIALS_TO_FINISH = (
    select(*Trial.__table__.columns, (Stage.generated >= Stage.trials).label("budget_used"))
    .join_from(Trial, Stage, (Stage.sweep_id == Trial.sweep_id) & (Stage.index == Trial.stage))
    .where(Trial.id.in_(bindparam("b_trial_ids", expanding=True)))
    .order_by(Trial.id)
    .with_for_update(of=Trial.__table__)
)

#: Set the columns named by the parameters' other keys on trial ``b_trial_id``; with a list
#: of parameter dictionaries (all with the same keys), one trial each.
UPDATE_TRIAL = update(Trial).where(Trial.id == bindparam("b_trial_id"))


def _upsert(dialect_insert: Any) -> Any:
    stmt = dialect_insert(CurvePoint)
    return stmt.on_conflict_do_update(
        index_elements=["trial_id", "step"],
        set_={"metrics": stmt.excluded.metrics, "created_at": stmt.excluded.created_at},
    )


_UPSERT_POINTS = {"postgresql": _upsert(postgresql.insert), "sqlite": _upsert(sqlite.insert)}


def upsert_points(dialect: str) -> Any:
    """Insert curve points, a point of a step already recorded replacing it; executed with
    one parameter dictionary per point (``trial_id``, ``step``, ``metrics``, ``created_at``)."""
    return _UPSERT_POINTS[dialect]
