"""Maps a search kind to its designer.

``SearchConfig`` admits only the kinds of ``SearchKind``, and this table has a designer
for each, so a validated config always finds one."""

from __future__ import annotations

from hypersweep.service.search.base import Designer, SearchConfig, SearchKind
from hypersweep.service.search.bayes import BayesDesigner
from hypersweep.service.search.grid import GridDesigner
from hypersweep.service.search.lipo import LipoDesigner
from hypersweep.service.search.local import LocalDesigner
from hypersweep.service.search.random import RandomDesigner
from hypersweep.service.search.space import Space

__all__ = ["DESIGNERS", "make_designer"]

#: The designer of each search kind.
DESIGNERS: dict[SearchKind, type[Designer]] = {
    "random": RandomDesigner,
    "grid": GridDesigner,
    "bayes": BayesDesigner,
    "lipo": LipoDesigner,
    "local": LocalDesigner,
}


def make_designer(space: Space, *, config: SearchConfig, stage: int, minimize: bool) -> Designer:
    """A designer for one stage of a sweep."""
    return DESIGNERS[config.kind](space, config=config, stage=stage, minimize=minimize)
