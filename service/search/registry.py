"""Maps a search kind to its designer; unknown kinds are rejected."""

from __future__ import annotations

from hypersweep.service.search.base import Designer, SearchConfig
from hypersweep.service.search.bayes import BayesDesigner
from hypersweep.service.search.grid import GridDesigner
from hypersweep.service.search.random import RandomDesigner
from hypersweep.service.search.space import Space

__all__ = ["available_kinds", "make_designer"]

_DESIGNERS: dict[str, type[Designer]] = {
    "random": RandomDesigner,
    "grid": GridDesigner,
    "bayes": BayesDesigner,
}


def available_kinds() -> tuple[str, ...]:
    return tuple(_DESIGNERS)


def make_designer(space: Space, *, config: SearchConfig, stage: int, minimize: bool) -> Designer:
    """A designer for one stage. Raises ``ValueError`` for a kind with no designer."""
    try:
        factory = _DESIGNERS[config.kind]
    except KeyError:
        raise ValueError(
            f"search kind {config.kind!r} is not available; choose one of {', '.join(_DESIGNERS)}"
        ) from None
    return factory(space, config=config, stage=stage, minimize=minimize)
