"""Which claimed trials a worker may train together as one fused model.

``hypersweep worker --fuse K`` claims up to K trials at once; :func:`group_trials` splits
them into groups that :func:`trainer.fused.train_fused` can train as one model (trials
whose trainer configs share a :func:`trainer.fused.fusion_key`: they differ at most in
``lr``, ``reg``, ``momentum``, ``dropout`` and the learning-rate schedule). The agent trains a group of one the
ordinary way.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from hypersweep.worker.wire import ClaimedTrial

__all__ = ["group_trials", "trial_fusion_key"]


def trial_fusion_key(trial: ClaimedTrial) -> Hashable | None:
    """The fusion key of a claimed trial's trainer config, or None when its settings
    cannot be read as one: such a trial is trained alone, where the ordinary path reports
    why it fails."""
    # Imported here: a worker that runs users' programs never needs the trainer (PyTorch).
    from hypersweep.trainer.fused import fusion_key

    try:
        key = fusion_key(trial.config)
        hash(key)
    except (TypeError, ValueError):
        return None
    return key


def group_trials(trials: Sequence[ClaimedTrial]) -> list[list[ClaimedTrial]]:
    """Split ``trials`` into groups that can be fused, every trial in exactly one group.

    Groups come in the order of their first trial, and keep their trials in claim order.
    A trial without a fusion key (see :func:`trial_fusion_key`) is a group of its own.
    """
    groups: dict[Hashable, list[ClaimedTrial]] = {}
    for trial in trials:
        key = trial_fusion_key(trial)
        groups.setdefault(object() if key is None else key, []).append(trial)
    return list(groups.values())
