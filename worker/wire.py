"""What the REST API answers, as typed objects: parsed once, when the answer arrives.

:class:`~hypersweep.worker.client.ServiceClient` returns these; ``hypersweep.Client``
hands them to users. They mirror the response models of ``hypersweep.service.schemas``
field for field (``tests/worker/test_wire.py`` holds the two together) but are the
client's own: importing them pulls in neither SQLAlchemy nor the server's search code, and
an answer with fields this client does not know yet still parses (they are ignored).

Contracts:

* Every object is frozen. Mappings inside (``params``, ``metrics``, ``settings``) are
  plain dicts for convenience; treat them as read-only.
* JSON has no NaN or infinity, so the server sends non-finite metric values as the
  strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``; here they are floats again.
  :meth:`Trial.as_json` turns them back into those strings.
* Times are ``datetime`` objects as the server sent them (UTC; naive on a server whose
  database keeps naive times).
"""

from __future__ import annotations

import math
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_serializer

if TYPE_CHECKING:
    from hypersweep.trainer.config import TrainerConfig

__all__ = [
    "UNFINISHED",
    "Action",
    "ClaimAnswer",
    "ClaimedTrial",
    "CurvePoint",
    "Enqueued",
    "FinishOutcome",
    "Objective",
    "Stage",
    "StageStatus",
    "Sweep",
    "SweepCurves",
    "SweepStatus",
    "Trial",
    "TrialCurve",
    "TrialStatus",
    "decode_floats",
    "encode_floats",
]

SweepStatus = Literal["queued", "running", "completed", "cancelled", "failed"]
TrialStatus = Literal["queued", "running", "completed", "diverged", "pruned", "failed", "cancelled"]
StageStatus = Literal["pending", "running", "completed", "cancelled", "failed"]

#: Trial statuses that are not final: the trial may still run.
UNFINISHED: frozenset[str] = frozenset({"queued", "running"})

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode_floats(value: Any) -> Any:
    """Return ``value`` with every non-finite float replaced by its JSON string name."""
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return "NaN"
        return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {key: encode_floats(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [encode_floats(item) for item in value]
    return value


def decode_floats(value: Any) -> Any:
    """Inverse of :func:`encode_floats`: the strings ``"NaN"``, ``"Infinity"`` and
    ``"-Infinity"`` become floats, anywhere in a JSON document."""
    if isinstance(value, str):
        return _NON_FINITE.get(value, value)
    if isinstance(value, dict):
        return {key: decode_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_floats(item) for item in value]
    return value


#: Metric values as the server stores them, non-finite floats included.
Metrics = Annotated[dict[str, Any], BeforeValidator(decode_floats)]


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Objective(_Answer):
    """What a sweep optimizes: ``metric`` (a name the trainer reports), ``mode`` max or min."""

    metric: str
    mode: Literal["max", "min"]


class CurvePoint(_Answer):
    """One reported point of a trial's curve: ``step`` is the epoch, from 1."""

    step: int
    metrics: Metrics
    created_at: datetime

    @field_serializer("metrics", when_used="json")
    def _json_metrics(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return dict(encode_floats(metrics))


class TrialCurve(_Answer):
    """One trial's curve as columns (``GET /sweeps/{id}/curves``): ``step`` and, per
    numeric metric, its value at each step (None where that step did not report it, or
    reported a non-finite number)."""

    id: int
    number: int
    stage: int
    status: TrialStatus
    step: tuple[int, ...]
    metrics: dict[str, tuple[float | None, ...]]


class SweepCurves(_Answer):
    sweep_id: int
    trials: tuple[TrialCurve, ...]


class Trial(_Answer):
    """One trial of a sweep.

    ``number`` counts from 0 within its sweep; ``stage`` is the index of its stage;
    ``params`` are its tuned values; ``metrics`` the last reported values plus the final
    ones; ``value`` the objective metric's final value (None until it has one).
    ``curve`` holds every reported point, oldest first, when the trial was read on its
    own (:meth:`ServiceClient.get_trial`); lists of trials leave it out (None). So do
    ``settings``: what the trainer or program was handed (its resolved settings).
    """

    id: int
    sweep_id: int
    stage: int
    number: int
    params: dict[str, Any]
    status: TrialStatus
    attempt: int
    worker_id: str | None
    metrics: Metrics
    value: float | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    curve: tuple[CurvePoint, ...] | None = None
    #: Whether a user chose its params (``hypersweep enqueue``, a stage's ``enqueue``).
    enqueued: bool = False
    settings: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        """Whether the trial has ended (completed, diverged, pruned, failed or cancelled)."""
        return self.status not in UNFINISHED

    @field_serializer("metrics", when_used="json")
    def _json_metrics(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return dict(encode_floats(metrics))

    def as_json(self) -> dict[str, Any]:
        """The trial as the server sent it: JSON-ready, non-finite metrics as strings, and
        without ``curve`` or ``settings`` when they were not read."""
        unread = {name for name in ("curve", "settings") if getattr(self, name) is None}
        return self.model_dump(mode="json", by_alias=True, exclude=unread or None)


class ClaimedTrial(Trial):
    """A trial leased to a worker by ``POST /trials/claim``.

    ``settings`` is the trial's resolved settings exactly as the server sent them (its
    ``trainer`` field: the sweep's trainer section, then the stage's ``epochs``, then the
    trial's params). ``prune_epochs`` are the epochs at which the server may prune the
    trial: their reports go at once, and training waits for the answer. ``config`` reads them as the built-in trainer's
    :class:`~hypersweep.trainer.config.TrainerConfig`, the first time it is asked for:
    settings meant for another program never need to be one. ``lease_token`` proves the
    lease on every report, heartbeat and finish until ``lease_expires_at``.
    """

    settings: dict[str, Any] = Field(alias="trainer")
    lease_token: str
    lease_expires_at: datetime
    #: The epochs at which the server may stop the trial (its stage's pruner).
    prune_epochs: tuple[int, ...] = ()

    @property
    def config(self) -> TrainerConfig:
        """``settings`` as the built-in trainer's config, parsed at most once.

        Raises ``ValueError`` or ``TypeError`` (the same one every time) when the settings
        are not a valid ``TrainerConfig``."""
        parsed = self._parsed_config
        if isinstance(parsed, Exception):
            raise parsed.with_traceback(None)
        return parsed

    # Cached in the instance, outside the model's fields: equality and dumps ignore it.
    @cached_property
    def _parsed_config(self) -> TrainerConfig | Exception:
        from hypersweep.trainer.config import TrainerConfig

        try:
            return TrainerConfig.from_settings(dict(self.settings))
        except (TypeError, ValueError) as exc:
            return exc


class Stage(_Answer):
    """One stage of a sweep, in order (``index`` from 0).

    ``space`` is the stage's search space as derived (None until the stage starts: a later
    stage's space is narrowed around the best trials of the one before); ``search`` its
    search settings; ``trials`` and ``epochs`` its budget; ``counts`` its trials by status;
    ``best_value`` the best objective value among its completed trials (None before one).
    ``status`` is ``cancelled`` for the stages a cancel of the sweep stopped or kept from
    starting.
    """

    index: int
    status: StageStatus
    best_value: float | None = None
    space: dict[str, Any] | None
    search: dict[str, Any]
    trials: int
    epochs: int
    top_k: int | None
    counts: dict[str, int]
    started_at: datetime | None
    finished_at: datetime | None
    #: Of its trials, those users chose; ``waiting``: params enqueued before it started.
    enqueued: int = 0
    waiting: tuple[dict[str, Any], ...] = ()

    @property
    def finished_trials(self) -> int:
        """How many of the stage's trials have ended, whatever the outcome."""
        return sum(n for status, n in self.counts.items() if status not in UNFINISHED)


class Enqueued(_Answer):
    """What an enqueue made: the ``trials`` queued in stage ``stage``, or, for a stage that
    has not started, the params ``waiting`` for it."""

    sweep_id: int
    stage: int
    trials: tuple[Trial, ...]
    waiting: tuple[dict[str, Any], ...] = ()


class Sweep(_Answer):
    """A sweep as the server reports it.

    ``status`` is running until every stage is done (completed), it was cancelled, or
    its search could not produce trials (failed: ``warnings`` says why);
    ``counts`` maps a trial status to how many trials have it; ``best`` is the best trial
    by the objective (None before any trial finished with a value); ``stages`` are in
    order; ``warnings`` are sentences about the document (a grid smaller than asked, ...);
    ``spec`` is the submitted document with its defaults filled in.
    """

    id: int
    name: str
    #: The user's program that runs its trials; ``None`` for the built-in trainer.
    program: str | None = None
    status: SweepStatus
    objective: Objective
    parallelism: int
    max_attempts: int
    current_stage: int
    counts: dict[str, int]
    best: Trial | None
    stages: tuple[Stage, ...]
    warnings: tuple[str, ...]
    spec: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None
    #: The sanity checks (``status``, ``checks``, ...), when the sweep runs them.
    sanity: dict[str, Any] | None = None

    @property
    def running(self) -> bool:
        """Whether the sweep may still start or run trials: it runs, or it waits for
        sanity checks that have not run yet."""
        pending = self.status == "queued" and (self.sanity or {}).get("status") == "pending"
        return self.status == "running" or pending

    @property
    def total_trials(self) -> int:
        """The trials its stages ask for, all stages together."""
        return sum(stage.trials for stage in self.stages)


class Action(_Answer):
    """The server's answer to a heartbeat or a report: go on, or ``"stop"`` the trial
    (its sweep was cancelled, or it was pruned; ``reason`` and ``detail`` say why when the
    server tells)."""

    action: Literal["continue", "stop"]
    lease_expires_at: datetime | None = None
    reason: str | None = None
    detail: str | None = None

    @property
    def stop(self) -> bool:
        return self.action == "stop"


class FinishOutcome(_Answer):
    """How one result carried by a claim was taken: ``code`` 200 (finished; ``status`` is
    the trial's status now), 404 (no such trial), 409 (not held with that lease token:
    nothing changed) or 422 (not a valid finish: nothing changed), with the reason in
    ``detail``."""

    trial_id: int | None
    code: int
    status: TrialStatus | None = None
    detail: str | None = None


class ClaimAnswer(_Answer):
    """``POST /trials/claim``'s 200 answer: the leased trials and, for a claim that
    carried results, one outcome per result in order."""

    trials: tuple[ClaimedTrial, ...]
    finished: tuple[FinishOutcome, ...] = ()
