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
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "SETTINGS",
    "TrainerConfig",
    "schedule_problems",
]

Optimizer = Literal["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]
Activation = Literal["relu", "leaky_relu", "tanh", "elu", "sigmoid", "prelu", "maxout"]
Init = Literal["xavier", "kaiming"]
LrSchedule = Literal["constant", "step", "exponential", "inverse_time", "cosine"]

OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
ACTIVATIONS: tuple[str, ...] = get_args(Activation)
INITS: tuple[str, ...] = get_args(Init)
LR_SCHEDULES: tuple[str, ...] = get_args(LrSchedule)
#: ``digits`` (scikit-learn's bundled 8x8 digits), ``spiral`` (generated), or
#: ``npz:<path>`` relative to the worker's data directory.
DATASET_PATTERN = r"^(digits|spiral|npz:.+)$"


@dataclass
class TrainerConfig:
    """Everything one training run needs. Units: ``lr`` per step, ``reg`` is the L2
    strength added to the loss as ``reg * sum(w**2)``, ``divergence_factor`` multiplies the
    first training loss (the run stops once a step's loss exceeds it).

    ``lr`` is the rate of the first epoch; ``lr_schedule`` lowers it epoch by epoch
    (``trainer.schedule``): ``step`` multiplies it by ``lr_gamma`` every
    ``lr_step_epochs`` epochs, ``exponential`` by ``lr_gamma`` every epoch,
    ``inverse_time`` divides it by ``1 + lr_gamma * t`` after ``t`` epochs, and ``cosine``
    follows half a cosine from ``lr`` towards 0 over ``epochs``. Which combinations make
    sense is :func:`schedule_problems`'s to say."""

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
    lr_schedule: LrSchedule = "constant"
    #: The decay factor of ``step`` and ``exponential`` (below 1), or the ``k`` of
    #: ``inverse_time``'s ``lr / (1 + k * t)`` (any positive number).
    lr_gamma: Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)] = 0.5
    #: Epochs between two decays of the ``step`` schedule, which needs it.
    lr_step_epochs: Annotated[int, Field(ge=1, le=10000)] | None = None
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

    def __post_init__(self) -> None:
        problems = schedule_problems(self.lr_schedule, lr_gamma=self.lr_gamma, lr_step_epochs=self.lr_step_epochs)
        if problems:
            raise ValueError(problems[0][1])

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: The names the trainer understands, as settings or as tuned parameters.
SETTINGS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainerConfig))


def schedule_problems(schedule: str, *, lr_gamma: float | None, lr_step_epochs: int | None) -> list[tuple[str, str]]:
    """What is wrong with ``lr_schedule`` = ``schedule`` given its two companions, as
    ``(setting, sentence)`` pairs; empty when the combination can run. ``None`` for
    ``lr_gamma`` means it is not in question (say, its range is checked elsewhere).

    ``step`` needs ``lr_step_epochs``; ``step`` and ``exponential`` multiply the rate by
    ``lr_gamma``, which must be below 1 for the rate to fall. Whether ``lr_step_epochs``
    is below the run's epochs is a sweep-level question (a stage may be shorter than a
    step): the service asks it at submit time."""
    problems: list[tuple[str, str]] = []
    if schedule == "step" and lr_step_epochs is None:
        problems.append(
            (
                "lr_step_epochs",
                "lr_schedule step needs lr_step_epochs, the epochs between two decays (e.g. lr_step_epochs: 5)",
            )
        )
    if schedule in ("step", "exponential") and lr_gamma is not None and not 0 < lr_gamma < 1:
        problems.append(
            (
                "lr_gamma",
                f"lr_schedule {schedule} multiplies the learning rate by lr_gamma, so lr_gamma must be "
                f"between 0 and 1 (exclusive), not {lr_gamma!r}; 0.5 halves it",
            )
        )
    return problems
