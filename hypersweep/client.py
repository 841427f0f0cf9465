"""The Python client: submit sweeps to a hypersweep server, follow them, read their results.

::

    import hypersweep

    client = hypersweep.Client("http://127.0.0.1:8000")
    sweep = client.submit("sweep.yaml")          # or a dict holding the same document
    done = client.wait(sweep, progress=True)      # a bar per stage until it ends
    best = done.best                              # a FrozenTrial (hypersweep.FrozenTrial), or None
    print(best.params, best.value, best.metrics["test_accuracy"])
    for trial in client.trials(done, status="completed", sort="-metric"):
        print(trial.number, trial.params, trial.value)

Answers are typed objects (:class:`Sweep`, :class:`Stage`, :class:`Trial` (``hypersweep.FrozenTrial``), defined in
:mod:`hypersweep.worker.wire`), read from the server at the moment of the call: a
``Sweep`` is a snapshot, and :meth:`Client.get_sweep` takes a fresh one. Every method that
takes a sweep takes its id or a ``Sweep``.

Errors: the server's refusals raise :class:`ServiceError` (``status_code`` and the
server's ``detail``: 404 for an unknown sweep, 422 with the bad field's path for an
invalid document, 401 for a missing token, 409 for cancelling a finished sweep); a server
that stays out of reach through the retries raises :class:`ServiceUnavailable`.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import httpx

from hypersweep.export import ExportFormat, export_trials
from hypersweep.worker.client import RetryPolicy, ServiceClient
from hypersweep.worker.wire import Enqueued, Sweep, Trial

if TYPE_CHECKING:
    from hypersweep.progress import SweepProgress

__all__ = ["DEFAULT_SERVER", "Client", "SweepRef"]

#: Where a client looks without ``server`` or ``HYPERSWEEP_SERVER``.
DEFAULT_SERVER = "http://127.0.0.1:8000"
#: A sweep, named by its id or by a :class:`Sweep` read earlier.
SweepRef = int | Sweep
#: The most trials one ``GET /sweeps/{id}/trials`` may answer (the server's limit).
_PAGE = 1000


def _sweep_id(sweep: SweepRef) -> int:
    return sweep.id if isinstance(sweep, Sweep) else int(sweep)


class Client:
    """A connection to one hypersweep server.

    ``server`` defaults to ``HYPERSWEEP_SERVER``, then ``http://127.0.0.1:8000``;
    ``token`` to ``HYPERSWEEP_TOKEN`` (sent as ``Authorization: Bearer``; none when empty).
    Requests that fail for want of the server (no connection, a timeout, a 502, 503 or
    504) are retried by ``retry`` (by default for up to a minute), each waiting at most
    ``timeout`` seconds for an answer. ``http`` replaces the connection with a given
    ``httpx.Client`` (a test's ``TestClient`` on the app, say); ``server``, ``token`` and
    ``timeout`` are then its business.

    The client owns its connection: :meth:`close` it, or use it in a ``with`` block. One
    client may be shared by threads.
    """

    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.server = (server or os.environ.get("HYPERSWEEP_SERVER") or DEFAULT_SERVER).rstrip("/")
        if token is None:
            token = os.environ.get("HYPERSWEEP_TOKEN") or None
        if http is None:
            self.service = ServiceClient.connect(self.server, token=token, timeout=timeout, retry=retry)
        else:
            self.service = ServiceClient(http, retry=retry)

    def close(self) -> None:
        """Close the connection (one given as ``http`` stays open: it is the giver's)."""
        self.service.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.server!r})"

    # Sweeps

    def submit(self, sweep: Mapping[str, Any] | str | os.PathLike[str]) -> Sweep:
        """Submit a sweep: a document (the mapping of the REST API), or the path of a YAML
        or JSON file holding one. Returns the stored sweep, its stages planned.

        Raises :class:`~hypersweep.documents.DocumentError` for a file that cannot be
        read as a document, and :class:`ServiceError` (422, the bad field's path and a
        sentence in ``detail``) for a document the server refuses; nothing is stored then.
        """
        if isinstance(sweep, Mapping):
            document = sweep
        else:
            from hypersweep.documents import load_document

            document = load_document(sweep)
        return self.service.submit_sweep(document)

    def get_sweep(self, sweep: SweepRef) -> Sweep:
        """The sweep as it is now: status, counts, best trial, stages, warnings."""
        return self.service.get_sweep(_sweep_id(sweep))

    def list_sweeps(self, *, limit: int = 50, offset: int = 0) -> list[Sweep]:
        """Sweeps, newest first: ``limit`` of them (at most 500) after skipping ``offset``."""
        return self.service.list_sweeps(limit=limit, offset=offset)

    def cancel(self, sweep: SweepRef) -> Sweep:
        """Cancel a sweep: no new trials start, running ones are told to stop. Returns the
        sweep, now cancelled; a sweep that has ended already is a :class:`ServiceError` (409)."""
        return self.service.cancel_sweep(_sweep_id(sweep))

    def follow(self, sweep: SweepRef, *, interval: float = 1.0) -> Iterator[Sweep]:
        """The sweep now, then again every ``interval`` seconds for as long as it runs: the
        last one yielded is the first that is no longer running."""
        current = self.get_sweep(sweep)
        while True:
            yield current
            if not current.running:
                return
            time.sleep(interval)
            current = self.get_sweep(current.id)

    def wait(
        self, sweep: SweepRef, *, interval: float = 1.0, timeout: float | None = None, progress: bool = False
    ) -> Sweep:
        """Wait until the sweep ends (completed, cancelled or failed) and return it, looking every
        ``interval`` seconds. With ``progress``, draw a bar per stage (with rich) meanwhile.

        Raises ``TimeoutError`` when it still runs after ``timeout`` seconds (checked at
        each look); the sweep goes on."""
        deadline = None if timeout is None else time.monotonic() + timeout
        bars: SweepProgress | None = None
        if progress:
            from hypersweep.progress import SweepProgress

            bars = SweepProgress()
        with bars or nullcontext():
            for current in self.follow(sweep, interval=interval):
                if bars is not None:
                    bars.update(current)
                if current.running and deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"sweep {current.id} is still running after {timeout} s")
        return current

    # Trials

    def enqueue(
        self,
        sweep: SweepRef,
        params: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        stage: int | None = None,
        key: str | None = None,
        allow_duplicate: bool = False,
    ) -> Enqueued:
        """Queue trials with params you chose (one set, or a list), ahead of the strategy's,
        in the current stage or stage ``stage``; they count within its trials. Returns what
        was made (:class:`~hypersweep.worker.wire.Enqueued`).

        ``key`` makes the call idempotent: the same key again answers the same trials and
        makes none. Without one, a fresh key is made for this call, so that the client's own
        retries never enqueue twice. The same params twice in a stage raise
        :class:`ServiceError` (422) unless ``allow_duplicate``; so do params outside the
        stage's space (with the field's path)."""
        body: dict[str, Any] = {
            "params": dict(params) if isinstance(params, Mapping) else [dict(p) for p in params],
            "key": key or uuid.uuid4().hex,
            "allow_duplicate": allow_duplicate,
        }
        if stage is not None:
            body["stage"] = stage
        return self.service.enqueue_trials(_sweep_id(sweep), body)

    def best_trial(self, sweep: SweepRef) -> Trial | None:
        """The sweep's best trial by its objective, as of now; None before any trial has a value."""
        return self.get_sweep(sweep).best

    def trials(
        self,
        sweep: SweepRef,
        *,
        status: str | None = None,
        stage: int | None = None,
        sort: str = "number",
        limit: int | None = None,
    ) -> list[Trial]:
        """The sweep's trials (without their curves: :meth:`get_trial` has them).

        ``status`` keeps those with that status (comma-separate several), ``stage`` those of
        one stage; ``sort`` names a field (``number``, ``metric``, ``stage``, ``status``,
        ``attempt``, ``started_at``, ``finished_at``, ...), ``-`` in front for descending:
        ``-metric`` is best first on a ``max`` objective, trials without a value last either
        way; ``limit`` keeps the first ones (default: all)."""
        sweep_id = _sweep_id(sweep)
        found: list[Trial] = []
        while limit is None or len(found) < limit:
            size = _PAGE if limit is None else min(_PAGE, limit - len(found))
            page = self.service.list_trials(
                sweep_id, status=status, stage=stage, sort=sort, limit=size, offset=len(found)
            )
            found += page
            if len(page) < size:
                break
        return found

    def get_trial(self, trial_id: int) -> Trial:
        """One trial with its curve (``trial.curve``: one point per reported epoch)."""
        return self.service.get_trial(trial_id)

    def export(self, sweep: SweepRef, format: ExportFormat = "csv") -> str:
        """Every trial of the sweep, by number, as CSV (one column per parameter and metric)
        or JSON: the text ``hypersweep export`` prints. See
        :func:`hypersweep.export.export_trials`."""
        if format not in ("csv", "json"):
            raise ValueError(f"unknown format {format!r}; use csv or json")
        return export_trials(self.trials(sweep, sort="number"), format)

    def export_study(self, sweep: SweepRef, storage: str, *, study_name: str | None = None) -> tuple[str, int]:
        """Write the sweep's finished trials to a new Optuna study in ``storage`` (a
        database URL such as ``sqlite:///study.db``), for optuna-dashboard,
        ``optuna.visualization`` and ``optuna.importance``; returns the study's name and
        how many trials it holds. See :mod:`hypersweep.export_optuna`."""
        from hypersweep.export_optuna import export_study

        found = self.get_sweep(sweep)
        trials = [trial for trial in self.trials(found, sort="number") if trial.finished]
        curves = self.service.sweep_curves(found.id, [trial.id for trial in trials])
        return export_study(found, trials, curves, storage, study_name=study_name)

    def export_tensorboard(self, sweep: SweepRef, directory: str | os.PathLike[str]) -> int:
        """Write one TensorBoard run per trial of the sweep under ``directory`` (its curves
        as scalars, its params and results as HParams); returns how many runs. Needs
        ``tensorboardX``. See :mod:`hypersweep.export_tensorboard`."""
        from pathlib import Path

        from hypersweep.export_tensorboard import export_tensorboard

        trials = self.trials(sweep, sort="number")
        curves = self.service.sweep_curves(_sweep_id(sweep), [trial.id for trial in trials])
        return export_tensorboard(trials, curves, Path(directory))
