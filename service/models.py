"""Database tables: sweeps, their stages, trials and the points of each trial's curve.

The statuses are defined in ``statuses`` and exported here too, with the tables that
store them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from hypersweep.service.statuses import FINISHED, SweepStatus, TrialStatus

__all__ = [
    "FINISHED",
    "Base",
    "CurvePoint",
    "PruneDecision",
    "Stage",
    "Sweep",
    "SweepStatus",
    "Trial",
    "TrialStatus",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as naive UTC and read back timezone-aware, on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass a timezone-aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
        datetime: UTCDateTime,
    }


class Sweep(Base):
    __tablename__ = "sweeps"
    __table_args__ = (Index("ix_sweeps_status_program", "status", "program"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default=SweepStatus.running, index=True)
    objective_metric: Mapped[str] = mapped_column(String(200))
    #: The user's program that runs the sweep's trials; ``None`` for the built-in trainer.
    program: Mapped[str | None] = mapped_column(String(100))
    minimize: Mapped[bool]
    parallelism: Mapped[int]
    max_attempts: Mapped[int]
    current_stage: Mapped[int] = mapped_column(default=0)
    #: Trials created so far; the next trial's ``number``.
    trials_created: Mapped[int] = mapped_column(default=0)
    warnings: Mapped[list[Any]] = mapped_column(default=list)
    #: The sanity checks (``schemas.SanityOut`` as JSON); ``None`` when the sweep runs none.
    sanity: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class Stage(Base):
    __tablename__ = "stages"
    __table_args__ = (UniqueConstraint("sweep_id", "index", name="uq_stages_sweep_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"))
    index: Mapped[int]
    #: The stage's space as derived (stage 0: the sweep's space); null until the stage starts.
    space: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    search: Mapped[dict[str, Any]]
    trials: Mapped[int]
    epochs: Mapped[int]
    top_k: Mapped[int | None]
    #: Trials created in this stage so far; the next one's index within the stage.
    generated: Mapped[int] = mapped_column(default=0)
    #: Of those, the trials users chose (enqueued), waiting ones included: the stage's
    #: designer numbers only its own trials, so its next index is ``generated - enqueued``.
    enqueued: Mapped[int] = mapped_column(default=0, server_default="0")
    #: Trials enqueued before the stage started, each ``{"params": ..., "key": ...}``; they
    #: become queued trials when it starts.
    waiting: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class Trial(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("sweep_id", "number", name="uq_trials_sweep_number"),
        # One trial per index of a stage: a grid point or a random draw is never run twice.
        UniqueConstraint("sweep_id", "stage", "stage_index", name="uq_trials_sweep_stage_index"),
        # Serves the hot path: the queued trials of a sweep in number order, and counts of
        # running or active trials, without touching the finished ones.
        Index("ix_trials_sweep_status_number", "sweep_id", "status", "number"),
        Index("ix_trials_status_lease", "status", "lease_expires_at"),
        Index("ix_trials_sweep_value", "sweep_id", "value"),
        Index("ix_trials_sweep_enqueue_key", "sweep_id", "enqueue_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"))
    stage: Mapped[int]
    stage_index: Mapped[int]
    number: Mapped[int]
    params: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default=TrialStatus.queued)
    attempt: Mapped[int] = mapped_column(default=1)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    lease_token: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: The objective metric's final value, when finite; what ``best`` and sorting use.
    value: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    #: Whether a user chose the params (``POST /sweeps/{id}/trials`` or a stage's ``enqueue``).
    enqueued: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: The client's key of the enqueue call that made the trial, when it gave one.
    enqueue_key: Mapped[str | None] = mapped_column(String(200))


class CurvePoint(Base):
    __tablename__ = "curve_points"
    __table_args__ = (UniqueConstraint("trial_id", "step", name="uq_curve_points_trial_step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    step: Mapped[int]
    metrics: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PruneDecision(Base):
    """One pruning decision: whether a trial went on at one epoch of its stage, and what it
    was compared with. A decision is made once per trial and epoch and never changes, so a
    restarted server answers the same; the dashboard shows them rung by rung."""

    __tablename__ = "prune_decisions"
    __table_args__ = (
        UniqueConstraint("trial_id", "step", name="uq_prune_decisions_trial_step"),
        Index("ix_prune_decisions_sweep_stage_step", "sweep_id", "stage", "step"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"))
    stage: Mapped[int]
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    #: The epoch decided at (a rung of ``asha``, any epoch after the warm-up of ``median``).
    step: Mapped[int]
    #: The trial's value compared: at this epoch (asha), or its best so far (median);
    #: null when it was not a finite number.
    value: Mapped[float | None] = mapped_column(Float)
    #: What the value had to reach; null when there was nothing to compare against.
    cutoff: Mapped[float | None] = mapped_column(Float)
    #: How many trials' values the cutoff was taken over.
    compared: Mapped[int]
    pruned: Mapped[bool]
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
