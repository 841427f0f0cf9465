"""Checkpoint folders: where one attempt of a trial leaves files for the next.

With a root (``hypersweep worker --checkpoint-root DIR``, or ``HYPERSWEEP_CHECKPOINT_ROOT``;
a file system every worker shares, in a cluster), trial ``T`` of sweep ``S`` gets the
folder ``DIR/S/T``, made before each attempt runs. A trial that runs again (its worker
was killed and its lease expired, or its worker gave it back on SIGTERM) finds there what
its last attempt saved: the built-in trainer resumes from its last epoch; a function
program reads ``trial.checkpoint_dir``, a command ``HYPERSWEEP_CHECKPOINT_DIR``. The worker
never empties or removes a folder: what a finished trial saved stays until someone removes
it. Without a root nothing is saved and every attempt starts afresh.

The folders are keyed by the ids one server's database gives: one root serves one
database (a database started afresh numbers its sweeps from 1 again).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["check_checkpoint_root", "checkpoint_dir"]


def check_checkpoint_root(root: str) -> str:
    """``root`` as an absolute path, made if missing; ``ValueError`` with a sentence when it
    cannot be made or written to."""
    path = Path(root).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise ValueError(f"HYPERSWEEP_CHECKPOINT_ROOT (--checkpoint-root): {root!r} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"HYPERSWEEP_CHECKPOINT_ROOT (--checkpoint-root): cannot create {root!r}: {exc}") from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(
            f"HYPERSWEEP_CHECKPOINT_ROOT (--checkpoint-root): {root!r} is not a folder this user can write to"
        )
    return str(path)


def checkpoint_dir(root: str | Path, sweep_id: int, trial_id: int) -> Path:
    """The checkpoint folder of trial ``trial_id`` of sweep ``sweep_id`` under ``root``,
    made if missing (``OSError`` when it cannot be)."""
    folder = Path(root) / str(sweep_id) / str(trial_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
