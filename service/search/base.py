"""The strategy interface: a designer turns a stage's space and what is known so far into
new parameter sets. Designers know nothing of storage or HTTP: the search policy
(``policy``) shows a designer the trials, asks it, and ``service.claims`` stores what it
suggests.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hypersweep.service.search.space import ParamValue, Space

__all__ = ["MAX_GRID_POINTS", "Designer", "Observation", "Params", "SearchConfig", "SearchKind"]

#: The largest grid a stage may ask for (product of the points of every axis).
MAX_GRID_POINTS = 100_000

Params = dict[str, ParamValue]
#: The search kinds a sweep may name; ``registry`` has a designer for each.
SearchKind = Literal["random", "grid", "bayes", "lipo", "local"]


class SearchConfig(BaseModel):
    """The ``search`` section of a sweep document (or of one stage)."""

    model_config = ConfigDict(extra="forbid")

    kind: SearchKind = "random"
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    grid_points: int = Field(default=5, ge=1, le=1000)
    sampler: Literal["tpe", "gp"] = "tpe"
    radius: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="local: the first trust-region radius, a fraction of each axis's range in its scale.",
    )


@dataclass(frozen=True, slots=True)
class Observation:
    """A finished trial as a designer sees it: its parameters and objective value
    (``None`` when the trial diverged or produced no finite value). ``pruned``: the trial
    was stopped early as a loser of its stage; its value is a partial one."""

    params: Params
    value: float | None
    diverged: bool = False
    #: The stage the trial ran in, when known.
    stage: int | None = None
    pruned: bool = False


class Designer(ABC):
    """Suggests parameter sets for one stage of one sweep.

    ``suggest(start, count)`` returns ``count`` parameter sets for the stage's trials
    ``start .. start + count - 1`` (their index within the stage). Designers that do not
    learn from results (random, grid) must return the same sets for the same indices, so
    a sweep is reproducible from its seed whatever order workers claim in. Designers that
    learn are told what finished and what is running through ``update`` before each call.
    """

    #: Whether ``update`` needs to see the trials that finished and those running.
    learns: bool = False
    #: Whether the designer starts from the previous stage's ``top_k`` best trials, which
    #: the policy hands to :meth:`start_from` once, before the first ``update``.
    starts_from_previous: bool = False

    def __init__(self, space: Space, *, config: SearchConfig, stage: int, minimize: bool) -> None:
        self.space = space
        self.config = config
        self.stage = stage
        self.minimize = minimize

    def capacity(self) -> int | None:
        """The most distinct trials this designer can suggest, or ``None`` for no limit."""
        return None

    def update(self, completed: Sequence[Observation], active: Sequence[Params]) -> None:  # noqa: B027
        """Take in the trials finished since the last call and those now running; designers
        that do not learn ignore it."""

    def start_from(self, starts: Sequence[Params]) -> None:  # noqa: B027
        """Take the previous stage's best trials, best first (designers with
        ``starts_from_previous`` only)."""

    @abstractmethod
    def suggest(self, start: int, count: int) -> list[Params]:
        """Parameter sets for the stage's trials ``start .. start + count - 1``. A designer
        that learns may return fewer when it has nothing new to propose until a running
        trial ends (the claim hands the rest of the budget back)."""
