"""Checks of a sweep document that span several fields, made at submit time so that
nothing a worker cannot run is ever stored."""

from __future__ import annotations

import importlib.util
import json
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from hypersweep.service.enqueue import document_errors
from hypersweep.service.schedule_checks import check_schedule
from hypersweep.service.schemas import SweepSpec
from hypersweep.service.search.base import MAX_GRID_POINTS, SearchConfig
from hypersweep.service.search.local import cobyqa_missing
from hypersweep.service.search.registry import make_designer
from hypersweep.service.search.space import CategoricalParam, FloatParam, IntParam, Space
from hypersweep.trainer.config import SETTINGS, TrainerConfig

__all__ = ["DEFAULT_TOP_K", "Loc", "PlannedStage", "SpecError", "check_spec", "cross_field_errors"]

Loc = tuple[str | int, ...]
#: A later stage without ``top_k`` narrows around this many best trials of the stage before
#: (all of them when it ran fewer). The span of more best trials tends to reach across
#: separate good regions, leaving the next stage nearly the whole space.
DEFAULT_TOP_K = 3


def _without_none(hint: Any) -> Any:
    """``X`` for an optional setting's ``X | None``; any other type as it is."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kept = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(kept) == 1:
            return kept[0]
    return hint


#: Each setting's type, an optional one's without its ``None``.
_trainer_types = {name: _without_none(hint) for name, hint in typing.get_type_hints(TrainerConfig).items()}
_space_adapter: TypeAdapter[Space] = TypeAdapter(Space)


class SpecError(ValueError):
    """Invalid sweep document: ``errors`` holds ``(location, sentence)`` pairs."""

    def __init__(self, errors: list[tuple[Loc, str]]) -> None:
        super().__init__("; ".join(msg for _, msg in errors))
        self.errors = errors


@dataclass
class PlannedStage:
    trials: int
    epochs: int
    top_k: int | None
    search: SearchConfig


@dataclass
class Plan:
    stages: list[PlannedStage]
    warnings: list[str] = field(default_factory=list)


def check_spec(spec: SweepSpec) -> Plan:
    """Validate what pydantic cannot see field by field and plan the stages.

    Raises ``SpecError`` with every problem found; returns the stages with their budgets
    resolved (a grid stage without ``trials`` runs its whole grid) and warnings. ``spec``
    is normalised in place to what was checked, so that what is stored is what runs: its
    ``trainer`` settings and categorical values as the trainer reads them (``lr: 1`` is
    stored as ``1.0``)."""
    errors: list[tuple[Loc, str]] = []
    plan = Plan(stages=[])
    if spec.program is None:
        _check_trainer(spec, errors, plan.warnings)
        _check_space_names(spec, errors)
        errors.extend(check_schedule(spec, plan.warnings))
    else:
        # The user's program understands its own settings and params; the worker reads
        # only the divergence rule's two.
        _check_program_settings(spec.trainer, errors)
    for i, stage in enumerate(spec.stages):
        search = stage.search or spec.search
        search_loc: Loc = ("stages", i, "search") if stage.search else ("search",)
        if search.kind == "bayes" and search.sampler == "gp" and not _have_torch():
            errors.append(((*search_loc, "sampler"), _GP_NEEDS_TORCH))
            continue
        problem = _search_kind_problem(spec, search, i)
        if problem is not None:
            errors.append(((*search_loc, "kind"), problem))
            continue
        trials = stage.trials
        if search.kind == "grid":
            size = _grid_points(spec, search)
            if size > MAX_GRID_POINTS:
                errors.append(
                    (
                        (*search_loc, "grid_points"),
                        f"the grid has {size:,} points, more than the {MAX_GRID_POINTS:,} allowed; "
                        "lower grid_points or remove axes",
                    )
                )
                continue
            if trials is None or trials > size:
                if trials is not None:
                    plan.warnings.append(f"stage {i} asks for {trials} trials but its grid has {size}; it runs {size}")
                trials = size
        elif trials is None:
            errors.append((("stages", i, "trials"), f"a {search.kind} stage needs a number of trials"))
            continue
        top_k = stage.top_k
        if i == 0 and top_k is not None:
            errors.append((("stages", 0, "top_k"), "top_k narrows around the stage before; the first stage has none"))
        elif i > 0:
            previous = plan.stages[-1].trials if len(plan.stages) == i else None
            if top_k is None:
                top_k = min(DEFAULT_TOP_K, previous or DEFAULT_TOP_K)
            elif previous is not None and top_k > previous:
                errors.append(
                    (("stages", i, "top_k"), f"top_k ({top_k}) is more than the {previous} trials of stage {i - 1}")
                )
        plan.stages.append(PlannedStage(trials=trials, epochs=stage.epochs, top_k=top_k, search=search))
        if stage.enqueue is not None:
            stage.enqueue, problems = document_errors(spec.space, stage.enqueue, stage=i, budget=trials)
            errors += problems
    if errors:
        raise SpecError(errors)
    return plan


_GP_NEEDS_TORCH = (
    "sampler gp needs PyTorch on the server (Optuna's GPSampler runs on it), and this server has none: "
    "install hypersweep[worker] on the server, or use sampler: tpe"
)


def _search_kind_problem(spec: SweepSpec, search: SearchConfig, stage: int) -> str | None:
    """Why stage ``stage`` cannot run ``search``'s kind on this space and server, if it cannot."""
    if search.kind == "lipo":
        categorical = [name for name, param in spec.space.items() if isinstance(param, CategoricalParam)]
        if categorical:
            return (
                f"lipo searches numeric axes only, and {', '.join(categorical)} "
                f"{'is' if len(categorical) == 1 else 'are'} categorical: use bayes, or fix the value in trainer"
            )
    if search.kind == "local":
        if stage == 0:
            return (
                "local refines the previous stage's best trials, and stage 0 has none: "
                "give stage 0 another search (stages[0].search) and use local in a later stage"
            )
        if all(isinstance(param, CategoricalParam) for param in spec.space.values()):
            return "local refines numeric axes, and this space has none"
        return cobyqa_missing()
    return None


def _have_torch() -> bool:
    """Whether PyTorch can be imported here, found without importing it."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def _grid_points(spec: SweepSpec, search: SearchConfig) -> int:
    designer = make_designer(spec.space, config=search, stage=0, minimize=False)
    size = designer.capacity()
    assert size is not None
    return size


#: The largest ``trainer`` section a program's sweep may carry, as JSON.
MAX_PROGRAM_SETTINGS_BYTES = 64 * 1024


def _check_program_settings(trainer: dict[str, Any], errors: list[tuple[Loc, str]]) -> None:
    size = len(json.dumps(trainer, separators=(",", ":")).encode())
    if size > MAX_PROGRAM_SETTINGS_BYTES:
        errors.append(
            (("trainer",), f"the trainer section is {size:,} bytes as JSON, more than the 64 KiB a program's may hold")
        )
    if "epochs" in trainer:
        errors.append((("trainer", "epochs"), _EPOCHS_BY_STAGE))
    factor = trainer.get("divergence_factor")
    if factor is not None and (
        isinstance(factor, bool) or not isinstance(factor, int | float) or not math.isfinite(factor) or factor <= 1
    ):
        errors.append(
            (("trainer", "divergence_factor"), "divergence_factor must be a number above 1 (the default is 3.0)")
        )
    metric = trainer.get("divergence_metric")
    if metric is not None and not (isinstance(metric, str) and 1 <= len(metric) <= 200):
        errors.append(
            (
                ("trainer", "divergence_metric"),
                "divergence_metric must be the name of a reported metric, e.g. train_loss",
            )
        )


def _check_trainer(spec: SweepSpec, errors: list[tuple[Loc, str]], warnings: list[str]) -> None:
    """Check the ``trainer`` section strictly against the built-in trainer's settings and
    replace it with the checked values."""
    checked: dict[str, Any] = {}
    for name, value in spec.trainer.items():
        loc: Loc = ("trainer", name)
        if name not in SETTINGS:
            errors.append((loc, _unknown_setting(name)))
        elif name == "epochs":
            errors.append((loc, _EPOCHS_BY_STAGE))
        else:
            try:
                checked[name] = _setting(name, value)
            except ValueError as exc:
                errors.append((loc, str(exc)))
                continue
            if name in spec.space:
                warnings.append(f"trainer.{name} is not used: the space tunes {name}, and a tuned value wins")
    spec.trainer = checked


_EPOCHS_BY_STAGE = "epochs is set by each stage (stages[].epochs), which would override it here; remove it from trainer"
_trainer_hints = typing.get_type_hints(TrainerConfig, include_extras=True)
#: One strict validator per setting: a setting takes its own type only (``batchnorm:
#: "false"`` and ``hidden: 64.0`` are refused), except that a float setting takes an integer.
_strict_settings: dict[str, TypeAdapter[Any]] = {
    name: TypeAdapter(_trainer_hints[name], config=ConfigDict(strict=True)) for name in SETTINGS
}
#: How to write a value of each type, for a value of another type.
_TYPE_HINTS = {
    bool: "write true or false, unquoted",
    int: "write a whole number, without a decimal point (64, not 64.0)",
    float: "write a number, unquoted",
    str: "write a text",
}


def _setting(name: str, value: Any) -> Any:
    """``value`` as setting ``name`` of the built-in trainer holds it; ``ValueError`` with a
    sentence when it cannot."""
    if name == "dataset" and _leaves_data_dir(value):
        raise ValueError(_NPZ_PATH)
    try:
        return _strict_settings[name].validate_python(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = f"{name} = {value!r} is not a valid setting: {error['msg']}"
        hint = _TYPE_HINTS.get(_trainer_types[name])
        if hint is not None and error["type"].endswith(("_type", "_parsing")):
            message += f"; {hint}"
        raise ValueError(message) from None


_NPZ_PATH = "an npz path is relative to the workers' data directory, without '..'"


def _leaves_data_dir(dataset: Any) -> bool:
    """Whether ``dataset`` is an ``npz:`` path that is absolute or climbs with ``..``."""
    if not (isinstance(dataset, str) and dataset.startswith("npz:")):
        return False
    path = PurePosixPath(dataset[4:])
    return path.is_absolute() or ".." in path.parts


def _check_space_names(spec: SweepSpec, errors: list[tuple[Loc, str]]) -> None:
    """Check each axis against the setting it tunes: its kind, its bounds and each of its
    values as values of that setting; categorical values are replaced with the checked ones."""
    for name, param in spec.space.items():
        loc: Loc = ("space", name)
        if name not in SETTINGS:
            errors.append((loc, _unknown_setting(name)))
            continue
        expected = _trainer_types[name]
        if isinstance(param, FloatParam) and expected is int:
            errors.append(((*loc, "type"), f"{name} is a whole number; use type: int"))
            continue
        if isinstance(param, FloatParam | IntParam) and expected not in (int, float):
            errors.append(((*loc, "type"), f"{name} is not numeric; use type: categorical"))
            continue
        if isinstance(param, CategoricalParam):
            values = _checked_values(name, param.values, (*loc, "values"), errors)
            if values is not None:
                spec.space[name] = CategoricalParam(type="categorical", values=values)
            continue
        for end in ("low", "high"):
            try:
                _setting(name, getattr(param, end))
            except ValueError as exc:
                errors.append(((*loc, end), str(exc)))


def _checked_values(name: str, values: list[Any], loc: Loc, errors: list[tuple[Loc, str]]) -> list[Any] | None:
    """The values of a categorical axis as setting ``name`` holds them, or ``None`` (with
    errors) when one is not a value of it or two become the same."""
    checked: list[Any] = []
    failed = False
    for index, value in enumerate(values):
        try:
            value = _setting(name, value)
        except ValueError as exc:
            errors.append(((*loc, index), str(exc)))
            failed = True
            continue
        if value in checked:
            errors.append(((*loc, index), f"{value!r} appears twice among the values of {name}"))
            failed = True
        checked.append(value)
    return None if failed else checked


def _unknown_setting(name: str) -> str:
    return f"the built-in trainer does not understand {name!r}; it understands {', '.join(SETTINGS)}"


#: The parts of a document the stages are planned from: when one of them fails field
#: validation, the planning checks are left out.
_PLANNED_FROM = {"space", "search", "stages"}


def cross_field_errors(document: dict[str, Any], invalid: Sequence[Loc]) -> list[tuple[Loc, str]]:
    """The problems :func:`check_spec` finds in a document that failed field validation at
    ``invalid``, so that one answer reports them all.

    They are looked for in the rest of the document: the top-level fields that failed are
    left out (required ones replaced by stand-ins whose problems are not reported), a
    space keeps the axes that are valid on their own, and the stages are not planned when
    the space, the search or the stages failed."""
    if not invalid or not all(invalid):
        return []  # the body as a whole is wrong: nothing to check in it
    failed = {loc[0] for loc in invalid}
    stand_in = {key: value for key, value in document.items() if key not in failed}
    if "name" in failed:
        stand_in["name"] = "-"
    if "program" in failed:
        stand_in["program"] = "program"  # still a program's sweep: its checks, not the built-in trainer's
    if "stages" in failed:
        stand_in["stages"] = [{"trials": 1}]
    axes: set[str] = set()
    if "space" in failed:
        space = document.get("space")
        kept = (
            {name: axis for name, axis in space.items() if _valid_axis(name, axis)} if isinstance(space, dict) else {}
        )
        axes = set(kept)
        stand_in["space"] = kept or {"_": {"type": "float", "low": 0.0, "high": 1.0}}
    try:
        spec = SweepSpec.model_validate(stand_in)
    except ValidationError:
        return []
    try:
        check_spec(spec)
    except SpecError as exc:
        errors = exc.errors
    else:
        return []
    planned = not (failed & _PLANNED_FROM)
    return [
        (loc, msg)
        for loc, msg in errors
        if (loc[0] not in failed or (loc[0] == "space" and loc[1:2] and loc[1] in axes))
        and (planned or loc[0] not in ("search", "stages"))
    ]


def _valid_axis(name: Any, axis: Any) -> bool:
    try:
        _space_adapter.validate_python({name: axis})
    except ValidationError:
        return False
    return True
