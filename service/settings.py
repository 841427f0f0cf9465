"""A trial's resolved settings: what its trainer or program is handed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypersweep.trainer.config import TrainerConfig

__all__ = ["trial_settings"]

_TRAINER_DEFAULTS = TrainerConfig().as_dict()


def trial_settings(
    trainer: Mapping[str, Any], epochs: int, params: Mapping[str, Any], *, builtin: bool = True
) -> dict[str, Any]:
    """A trial's resolved settings: the built-in trainer's defaults (for a sweep of the
    built-in trainer), then the sweep's ``trainer`` section, then ``epochs`` from its stage,
    then its params (a param wins over a setting of the same name)."""
    defaults = _TRAINER_DEFAULTS if builtin else {}
    return {**defaults, **trainer, "epochs": epochs, **params}
