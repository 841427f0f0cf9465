"""The sweep document and the JSON shapes of the REST API."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from hypersweep.limits import MAX_CLAIM, MAX_ID, MAX_POINTS, MAX_STEP
from hypersweep.sanity import SanityMode
from hypersweep.service.models import SweepStatus, TrialStatus
from hypersweep.service.pruning import PrunerConfig
from hypersweep.service.search.base import SearchConfig
from hypersweep.service.search.space import MAX_PARAMS, Space

__all__ = [
    "ActionOut",
    "ClaimIn",
    "ClaimOut",
    "ClaimedTrial",
    "CurvePointOut",
    "EnqueueIn",
    "EnqueueOut",
    "FinishIn",
    "FinishOutcome",
    "FinishedIn",
    "ImportedTrial",
    "LeaseIn",
    "MetricValue",
    "Objective",
    "RefusedResult",
    "ReportIn",
    "SanityCheckOut",
    "SanityOut",
    "StageOut",
    "StageSpec",
    "StageStatus",
    "SweepOut",
    "SweepSpec",
    "TrialDetail",
    "TrialOut",
    "WarmStart",
]

_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}
#: The largest magnitude of an integer in a request: a signed 64-bit integer's.
MAX_INT = 2**63 - 1
#: The most parameter sets one enqueue call, or one stage's ``enqueue``, may hold.
MAX_ENQUEUE = 1000
#: The most earlier sweeps a sweep may warm-start from.
MAX_WARM_START = 100


def _json_safe_number(value: Any) -> Any:
    """Non-finite floats become the strings ``NaN``, ``Infinity`` and ``-Infinity``: JSON has
    no such numbers, and a stored NaN must never break a page or a sort."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else _NON_FINITE[value]
    return value


MetricValue = Annotated[float | int | bool | str | None, BeforeValidator(_json_safe_number)]
MetricName = Annotated[str, Field(min_length=1, max_length=200)]
Metrics = dict[MetricName, MetricValue]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _value_errors(value: Any, loc: tuple[str | int, ...], *, finite: bool, errors: list[InitErrorDetails]) -> None:
    """Add to ``errors`` what no field may hold, anywhere in ``value``: a NUL character in a
    text, an integer beyond 64 bits and, when ``finite``, a float that is not finite."""
    problem = None
    if isinstance(value, str):
        if "\x00" in value:
            problem = "contains a NUL character (\\u0000), which cannot be stored"
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int):
        if not -MAX_INT <= value <= MAX_INT:
            problem = f"is an integer of {len(str(abs(value)))} digits, beyond the 64-bit range"
    elif isinstance(value, float):
        if finite and not math.isfinite(value):
            problem = f"is {value}; only finite numbers are allowed here"
    elif isinstance(value, dict):
        for key, item in value.items():
            _value_errors(key, (*loc, str(key)), finite=finite, errors=errors)
            _value_errors(item, (*loc, str(key)), finite=finite, errors=errors)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _value_errors(item, (*loc, index), finite=finite, errors=errors)
    if problem is not None:
        # The input is left out: an integer of thousands of digits has no short form.
        errors.append(InitErrorDetails(type=PydanticCustomError("value_error", problem), loc=loc, input=None))


class _Body(_Strict):
    """A request body. No text in it may hold a NUL character: PostgreSQL stores none in
    text or JSON (it would fail there with a server error), so every backend refuses it.
    No integer in it may lie beyond 64 bits (``MAX_INT``), where the databases' numbers and
    float conversions end; a sweep document (``_finite``) holds no NaN or infinity either.
    Each such value is an error at its own path. Fields in ``_checked_apart`` are checked
    by their own model."""

    _finite: ClassVar[bool] = False
    _checked_apart: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _check_body(cls, data: Any) -> Any:
        errors: list[InitErrorDetails] = []
        if isinstance(data, dict):
            for key, value in data.items():
                if key not in cls._checked_apart:
                    _value_errors(key, (str(key),), finite=cls._finite, errors=errors)
                    _value_errors(value, (str(key),), finite=cls._finite, errors=errors)
        else:
            _value_errors(data, (), finite=cls._finite, errors=errors)
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return data


class Objective(_Strict):
    metric: str = Field(default="val_accuracy", min_length=1, max_length=200)
    mode: Literal["max", "min"] = "max"


class StageSpec(_Strict):
    trials: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Trials in this stage; a grid stage defaults to the whole grid."
    )
    epochs: int = Field(default=1, ge=1, le=10_000)
    top_k: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Later stages: narrow around this many best trials of the stage before.",
    )
    search: SearchConfig | None = Field(default=None, description="This stage's search; the sweep's by default.")
    pruner: PrunerConfig | None = Field(
        default=None, description="Stop the stage's losing trials early: asha, median or none (the default)."
    )
    enqueue: list[dict[str, Any]] | None = Field(
        default=None,
        max_length=MAX_ENQUEUE,
        description="Params to run first in this stage, each a value per parameter; they count within its trials.",
    )


#: A program's name: what a sweep names and a worker serves (``hypersweep worker --program``).
PROGRAM_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
ProgramName = Annotated[str, Field(min_length=1, max_length=100, pattern=PROGRAM_PATTERN)]


def _sanity_mode(value: Any) -> SanityMode:
    # One sentence for the field, instead of one per member of the union.
    if isinstance(value, bool) or value == "warn":
        return value  # type: ignore[no-any-return]
    raise ValueError(f"sanity is true, warn or false, not {value!r}")


class WarmStart(_Strict):
    sweeps: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        min_length=1,
        max_length=MAX_WARM_START,
        description="Earlier sweeps whose finished trials inform this one's search (not counted as its trials).",
    )


class SweepSpec(_Body):
    """A sweep document. Checks that need more than one field (trainer names, grid sizes,
    stage budgets) are made by ``service.validation.check_spec``."""

    _finite: ClassVar[bool] = True

    name: str = Field(min_length=1, max_length=200)
    program: ProgramName | None = Field(
        default=None,
        description="The user's program that runs the trials (workers started with --program NAME); "
        "omit for the built-in trainer.",
    )
    objective: Objective = Field(default_factory=Objective)
    space: Space = Field(min_length=1, max_length=MAX_PARAMS)
    search: SearchConfig = Field(default_factory=SearchConfig)
    stages: list[StageSpec] = Field(min_length=1, max_length=20)
    trainer: dict[str, Any] = Field(default_factory=dict)
    parallelism: int = Field(default=8, ge=1, le=100_000)
    max_attempts: int = Field(default=3, ge=1, le=100)
    sanity: Annotated[SanityMode, PlainValidator(_sanity_mode, json_schema_input_type=SanityMode)] = Field(
        default=False,
        description="Run the sanity checks before the first stage: true holds the sweep queued when one fails, "
        "warn starts it anyway with a warning, false skips them.",
    )
    warm_start: WarmStart | None = None


class TrialOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sweep_id: int
    stage: int
    number: int
    params: dict[str, Any]
    status: TrialStatus
    attempt: int
    worker_id: str | None
    metrics: dict[str, Any]
    value: float | None = Field(description="The objective metric's final value.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    enqueued: bool = Field(default=False, description="Whether a user chose its params (enqueued it).")


class CurvePointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    step: int
    metrics: dict[str, Any]
    created_at: datetime


class TrialDetail(TrialOut):
    curve: list[CurvePointOut]
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="What the trial's trainer or program is handed: the built-in trainer's defaults (for the "
        "built-in trainer), then the sweep's `trainer` section, then `epochs` from its stage, then its params.",
    )


#: A stage's status: ``cancelled`` for the stages a cancel stopped or kept from starting.
StageStatus = Literal["pending", "running", "completed", "cancelled", "failed"]


class StageOut(BaseModel):
    index: int
    status: StageStatus
    best_value: float | None = Field(
        default=None, description="The best objective value among the stage's completed trials (null before one)."
    )
    space: dict[str, Any] | None
    search: dict[str, Any]
    trials: int
    epochs: int
    top_k: int | None
    counts: dict[str, int]
    started_at: datetime | None
    finished_at: datetime | None
    enqueued: int = Field(default=0, description="Of its trials, those users chose, waiting ones included.")
    waiting: list[dict[str, Any]] = Field(
        default_factory=list, description="Params enqueued for the stage before it started; they run first in it."
    )


class SanityCheckOut(BaseModel):
    name: str
    measured: float | None
    expected: str
    expected_value: float | None
    passed: bool
    detail: str


class SanityOut(BaseModel):
    """The sanity checks of a sweep: ``pending`` until a worker has run them, then
    ``passed`` or ``failed`` (a check failed, or the checks could not run: ``error``)."""

    mode: Literal["true", "warn"]
    status: Literal["pending", "passed", "failed"]
    checks: list[SanityCheckOut] = Field(default_factory=list)
    error: str | None = None
    trial_id: int | None = None


class SweepOut(BaseModel):
    id: int
    name: str
    program: str | None = None
    status: SweepStatus
    objective: Objective
    parallelism: int
    max_attempts: int
    current_stage: int
    counts: dict[str, int]
    best: TrialOut | None
    stages: list[StageOut]
    warnings: list[str]
    spec: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None
    sanity: SanityOut | None = None


class ClaimedTrial(TrialOut):
    trainer: dict[str, Any] = Field(description="The trial's resolved trainer settings, epochs included.")
    lease_token: str
    lease_expires_at: datetime
    prune_epochs: list[int] = Field(
        default_factory=list,
        description="The epochs at which the server may stop the trial (its stage's pruner): "
        "a worker sends those epochs' reports at once and waits for the answer.",
    )


class LeaseIn(_Body):
    # The alphabet of the tokens claims hand out (``secrets.token_urlsafe``); anything else
    # was never a token, and is refused before it reaches a constant-time comparison.
    lease_token: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class PointIn(_Body):
    step: int = Field(ge=0, le=MAX_STEP)
    metrics: Metrics = Field(max_length=256)


class ReportIn(LeaseIn, PointIn):
    pass


class ReportsIn(LeaseIn):
    points: list[PointIn] = Field(
        min_length=1,
        max_length=MAX_POINTS,
        description="Points of the curve in the order they were measured; a step reported again replaces "
        "the one before.",
    )


class FinishIn(LeaseIn):
    status: Literal["completed", "diverged", "pruned", "failed"]
    metrics: Metrics = Field(default_factory=dict, max_length=256)
    error: str | None = Field(default=None, max_length=20_000)
    points: list[PointIn] = Field(
        default_factory=list,
        max_length=MAX_POINTS,
        description="Points of the curve not reported yet, recorded before the trial ends.",
    )


class FinishedIn(FinishIn):
    """The end of a trial, carried by a claim: a finish of trial ``trial_id``."""

    trial_id: int = Field(ge=0, le=MAX_ID)


@dataclass(frozen=True)
class RefusedResult:
    """A result carried by a claim that is not a valid finish: refused on its own (its
    outcome is a 422 with ``detail``), while the claim and its other results go on.
    ``trial_id`` is ``None`` when the result names no valid trial."""

    trial_id: int | None
    detail: str


_finished_adapter: TypeAdapter[FinishedIn] = TypeAdapter(FinishedIn)


def _result_alone(value: Any) -> FinishedIn | RefusedResult:
    try:
        return _finished_adapter.validate_python(value)
    except ValidationError as exc:
        trial_id = value.get("trial_id") if isinstance(value, dict) else None
        if isinstance(trial_id, bool) or not isinstance(trial_id, int) or not 0 <= trial_id <= MAX_ID:
            trial_id = None
        detail = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'result'}: {str(err['msg']).removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        return RefusedResult(trial_id, detail)


#: A result carried by a claim, validated on its own: a bad one fails only itself.
CarriedResult = Annotated[FinishedIn | RefusedResult, PlainValidator(_result_alone, json_schema_input_type=FinishedIn)]


class ClaimIn(_Body):
    _checked_apart: ClassVar[frozenset[str]] = frozenset({"finished"})

    worker_id: str = Field(min_length=1, max_length=200)
    program: ProgramName | None = Field(
        default=None,
        description="The program this worker runs: only trials of sweeps with that program are handed out "
        "(null: the built-in trainer's sweeps).",
    )
    sweep_id: int | None = Field(default=None, ge=0, le=MAX_ID)
    count: int = Field(default=1, ge=1, le=MAX_CLAIM)
    finished: list[CarriedResult] = Field(
        default_factory=list,
        max_length=MAX_CLAIM,
        description="Trials this worker has ended, each finished (as POST /trials/{id}/finish would) before "
        "the claim: a worker tells how its last trials went and asks for the next ones in one request. A "
        "result that is not a valid finish is refused on its own (its outcome is a 422).",
    )


class FinishOutcome(BaseModel):
    """How one result carried by a claim was taken: ``code`` 200 (finished; ``status`` is
    the trial's status now), 404 (no such trial), 409 (not held with that lease token:
    nothing changed) or 422 (not a valid finish: nothing changed; ``trial_id`` is null
    when it named no valid trial), with the reason in ``detail``."""

    trial_id: int | None
    code: Literal[200, 404, 409, 422]
    status: TrialStatus | None = None
    detail: str | None = None


class ClaimOut(BaseModel):
    trials: list[ClaimedTrial]
    finished: list[FinishOutcome] = Field(
        default_factory=list, description="One outcome per result the claim carried, in order."
    )


class EnqueueIn(_Body):
    """``POST /sweeps/{id}/trials``: trials with params the user chose."""

    _finite: ClassVar[bool] = True

    params: dict[str, Any] | list[dict[str, Any]] = Field(
        description="One parameter set, or a list of them, each a value per parameter of the stage's space."
    )
    stage: int | None = Field(default=None, ge=0, le=MAX_ID, description="The stage; the current one by default.")
    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The client's key for this call: the same key again answers the same trials and adds none.",
    )
    allow_duplicate: bool = Field(
        default=False, description="Allow params that the stage already has a trial with (refused otherwise)."
    )

    @model_validator(mode="after")
    def _check_count(self) -> EnqueueIn:
        if isinstance(self.params, list) and not 1 <= len(self.params) <= MAX_ENQUEUE:
            raise ValueError(f"params must hold 1 to {MAX_ENQUEUE} parameter sets, not {len(self.params)}")
        return self

    def param_sets(self) -> list[dict[str, Any]]:
        return self.params if isinstance(self.params, list) else [self.params]


class EnqueueOut(BaseModel):
    sweep_id: int
    stage: int
    trials: list[TrialOut] = Field(description="The trials made, queued ahead of the strategy's.")
    waiting: list[dict[str, Any]] = Field(
        default_factory=list,
        description="For a stage that has not started: the params as stored, to become trials when it starts.",
    )


class ImportedTrial(BaseModel):
    """A finished trial of an earlier sweep, as a warm-started sweep sees it."""

    sweep_id: int
    trial_id: int
    number: int
    params: dict[str, Any]
    status: TrialStatus
    value: float | None
    inside: bool = Field(description="Whether its params lie in this sweep's space (only those are used).")


class ActionOut(BaseModel):
    action: Literal["continue", "stop"]
    lease_expires_at: datetime | None = None
    #: Why to stop: ``pruned`` (``detail`` says why), or absent (the sweep was cancelled).
    reason: Literal["pruned"] | None = None
    detail: str | None = None
