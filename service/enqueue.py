"""Guess and check: the checks of trials a user chose, shared by a stage's ``enqueue`` in
a sweep document and by ``POST /sweeps/{id}/trials``.

Enqueued trials count within their stage's trial budget, as trials enqueued in Optuna
count within ``optimize(n_trials=...)``: a stage of 40 trials with 3 enqueued runs those 3
first, then 37 of its strategy's. The same params twice in a stage are refused unless the
caller allows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypersweep.service.search.base import Params
from hypersweep.service.search.chosen import ParamsKey, check_params, params_key
from hypersweep.service.search.space import Space

__all__ = ["check_param_sets", "document_errors"]

Loc = tuple[str | int, ...]


def check_param_sets(
    space: Space,
    param_sets: Sequence[dict[str, Any]],
    *,
    loc: Loc,
    single: bool = False,
    taken: set[ParamsKey] | None = None,
    allow_duplicate: bool = False,
    stage: int = 0,
) -> tuple[list[Params], list[tuple[Loc, str]]]:
    """Each parameter set as ``space`` holds it, and the problems found at ``loc`` (then
    the index of the set, unless ``single``, then the name). A set that repeats an earlier
    one of the list, or one in ``taken`` (the params of the stage's trials), is refused
    unless ``allow_duplicate``."""
    checked: list[Params] = []
    errors: list[tuple[Loc, str]] = []
    seen: set[ParamsKey] = set()
    for index, raw in enumerate(param_sets):
        where = loc if single else (*loc, index)
        params, problems = check_params(space, raw)
        errors += [((*where, name) if name else where, problem) for name, problem in problems]
        if problems:
            continue
        key = params_key(params)
        if not allow_duplicate:
            if key in seen:
                errors.append((where, "the same params appear twice in the list; set allow_duplicate to run both"))
                continue
            if taken is not None and key in taken:
                errors.append(
                    (
                        where,
                        f"stage {stage} already has a trial with these params; set allow_duplicate to run them again",
                    )
                )
                continue
        seen.add(key)
        checked.append(params)
    return checked, errors


def document_errors(
    space: Space, enqueue: Sequence[dict[str, Any]], *, stage: int, budget: int
) -> tuple[list[Params], list[tuple[Loc, str]]]:
    """A stage's ``enqueue`` in a sweep document, checked against the sweep's ``space`` (a
    later stage's space is derived only when it starts, inside the sweep's) and its trial
    ``budget``: the params as stored, and the problems at their paths."""
    loc: Loc = ("stages", stage, "enqueue")
    checked, errors = check_param_sets(space, enqueue, loc=loc, stage=stage)
    if len(enqueue) > budget:
        errors.append((loc, f"stage {stage} runs {budget} trials; it cannot run {len(enqueue)} enqueued ones"))
    return checked, errors
