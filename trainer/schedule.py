"""Learning-rate decay: the rate each epoch trains at, as a pure function of the epoch.

The rate changes once per epoch, at the epoch's start, and holds for every step of it, as
``torch.optim.lr_scheduler`` schedules do when ``scheduler.step()`` is called once per
epoch. Epoch ``e`` (counted from 1, as the trainer counts them) trains at
``lr * factor(t)`` with ``t = e - 1`` epochs behind it:

=================  ==================================================  ==========================
``lr_schedule``    ``factor(t)``                                       ``torch.optim.lr_scheduler``
=================  ==================================================  ==========================
``constant``       ``1``                                               (none)
``step``           ``lr_gamma ** (t // lr_step_epochs)``               ``StepLR``
``exponential``    ``lr_gamma ** t``                                   ``ExponentialLR``
``inverse_time``   ``1 / (1 + lr_gamma * t)``                          ``LambdaLR``
``cosine``         ``(1 + cos(pi * t / epochs)) / 2``                  ``CosineAnnealingLR``
=================  ==================================================  ==========================

``inverse_time`` is the lecture's 1/t decay, ``lr0 / (1 + k t)`` with ``k = lr_gamma``;
``cosine`` anneals over the run's own ``epochs`` towards 0 (``T_max = epochs``,
``eta_min = 0``), so its last epoch still trains at a small positive rate. The schedulers
in the right-hand column give the same rates step for step (``tests/trainer/test_schedule.py``);
they are not used directly because a fused group holds one rate per member in a tensor,
not in an optimizer's parameter groups, and a closed form keeps the rate a function of
the epoch alone: a run that starts again at epoch ``e`` trains at the same rate.
"""

from __future__ import annotations

import math

from hypersweep.trainer.config import TrainerConfig

__all__ = ["epoch_lr", "lr_factor"]


def lr_factor(schedule: str, t: int, *, gamma: float, step_epochs: int | None, epochs: int) -> float:
    """The multiple of the initial rate after ``t`` (>= 0) finished epochs of a run of
    ``epochs`` epochs (see the module docstring). Raises ``ValueError`` for an unknown
    schedule, or ``step`` without ``step_epochs``."""
    match schedule:
        case "constant":
            return 1.0
        case "step":
            if step_epochs is None:
                raise ValueError("lr_schedule step needs lr_step_epochs")
            return gamma ** (t // step_epochs)
        case "exponential":
            return gamma**t
        case "inverse_time":
            return 1.0 / (1.0 + gamma * t)
        case "cosine":
            return (1.0 + math.cos(math.pi * t / epochs)) / 2.0
    raise ValueError(f"unknown lr_schedule {schedule!r}")


def epoch_lr(config: TrainerConfig, epoch: int) -> float:
    """The learning rate ``config``'s run trains at during ``epoch`` (counted from 1)."""
    factor = lr_factor(
        config.lr_schedule,
        epoch - 1,
        gamma=config.lr_gamma,
        step_epochs=config.lr_step_epochs,
        epochs=config.epochs,
    )
    return config.lr * factor
