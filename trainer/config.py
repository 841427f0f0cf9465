"""The built-in trainer's settings: one dataclass, filled from a trial's resolved settings.

The service validates a sweep's ``trainer`` section and its tuned parameter names against
this dataclass at submit time (through pydantic, which honours the ``Annotated``
constraints below), so a setting the trainer does not understand never reaches a worker.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import ConfigDict, Field

__all__ = [
    "ACTIVATIONS",
    "DATASET_PATTERN",
    "INITS",
    "OPTIMIZERS",
    "SETTINGS",
    "TrainerConfig",
]

Optimizer = Literal["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]
Activation = Literal["relu", "leaky_relu", "tanh", "elu"]
Init = Literal["xavier", "kaiming"]

OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
ACTIVATIONS: tuple[str, ...] = get_args(Activation)
INITS: tuple[str, ...] = get_args(Init)
#: ``digits`` (scikit-learn's bundled 8x8 digits), ``spiral`` (generated), or
#: ``npz:<path>`` relative to the worker's data directory.
DATASET_PATTERN = r"^(digits|spiral|npz:.+)$"


@dataclass
class TrainerConfig:
    """Everything one training run needs. Units: ``lr`` per step, ``reg`` is the L2
    strength added to the loss as ``reg * sum(w**2)``, ``divergence_factor`` multiplies the
    first training loss (the run stops once a step's loss exceeds it)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    dataset: Annotated[str, Field(pattern=DATASET_PATTERN)] = "digits"
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 64
    epochs: Annotated[int, Field(ge=1, le=10000)] = 1
    lr: Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)] = 1e-2
    reg: Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)] = 0.0
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    hidden: Annotated[int, Field(ge=1, le=65536)] = 128
    layers: Annotated[int, Field(ge=1, le=64)] = 2
    optimizer: Optimizer = "sgd"
    activation: Activation = "relu"
    batchnorm: bool = False
    init: Init = "kaiming"
    divergence_factor: Annotated[float, Field(gt=1, allow_inf_nan=False)] = 3.0
    #: Seeds PyTorch and scikit-learn's split, which takes 0 .. 2**32 - 1.
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> TrainerConfig:
        """Build a config from resolved settings, ignoring nothing: an unknown name raises."""
        unknown = set(settings) - set(SETTINGS)
        if unknown:
            raise ValueError(f"unknown trainer settings: {', '.join(sorted(unknown))}")
        return cls(**settings)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: The names the trainer understands, as settings or as tuned parameters.
SETTINGS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainerConfig))
