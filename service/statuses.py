"""The statuses of sweeps and trials, and which of a trial's are final.

Plain enumerations, apart from the tables (``models``), so that code which only reasons
about statuses, the search policy among it, imports no database machinery.
"""

from __future__ import annotations

import enum

__all__ = ["ACTIVE", "FINISHED", "SweepStatus", "TrialStatus"]


class SweepStatus(enum.StrEnum):
    """``failed``: the sweep's search could not produce trials (its designer, or the
    narrowing that derives a stage's space, raised); its ``warnings`` say why. ``queued``:
    the sweep waits for its sanity checks, or they failed (``sanity: true``) and it waits
    for a person; no trial of its stages is handed out."""

    queued = "queued"
    running = "running"
    completed = "completed"
    cancelled = "cancelled"
    failed = "failed"


class TrialStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    completed = "completed"
    diverged = "diverged"
    pruned = "pruned"
    failed = "failed"
    cancelled = "cancelled"


#: Statuses of a trial that has not ended yet.
ACTIVE = (TrialStatus.queued, TrialStatus.running)
#: Statuses a trial never leaves.
FINISHED: frozenset[TrialStatus] = frozenset(
    {TrialStatus.completed, TrialStatus.diverged, TrialStatus.pruned, TrialStatus.failed, TrialStatus.cancelled}
)
