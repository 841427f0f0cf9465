"""Claims: the one claim algorithm, and the line that coalesces a sweep's claims.

A claim gives a worker up to ``count`` trials of a sweep, leased to it: ``running``, with
a fresh ``lease_token``, until ``lease_expires_at``. Claims of one sweep that arrive while
another of its claims runs wait in the sweep's line, in this process, and the next claim
transaction serves all of them in the order they came (:meth:`Claims._claim_from`): under
many workers the sweep's lock is taken once per batch of claims, not once per claim. The line
is an optimisation of one process; claims that arrive at other processes (API replicas on
one database) queue on the sweep's row lock instead, which is what makes claims exact.

The claim transaction (:meth:`Claims._claim_batch`) locks the sweep's row first, then
trial rows, as every transaction that creates or starts trials does (see ``store``); it
finishes the results the claims carry, then serves them (:meth:`Claims._serve`):

1. count the sweep's running, queued and expired trials;
2. re-queue (or fail) the expired ones, and count again;
3. share the free slots (``parallelism`` minus running) among the claims, in order;
4. lease queued trials first, in ``number`` order;
5. take budget from the current stage for the other slots, ask the search policy for that
   many params and insert them as leased trials; when the stage has handed out all of its
   budget and none of it is active, start the next stage and take from that;
6. count the new trials on the sweep, and give each trial its settings (:func:`trial_settings`).

A claim names the program its worker runs (``None``: the built-in trainer) and gets
trials only of sweeps that name the same program; naming a sweep of another program is
a :class:`~hypersweep.service.errors.Conflict`, checked before the claim joins the line,
so that it never fails the claims it would have been served with.

Usually nothing is queued or expired, the stage's designer does not learn and the stage
has budget for every slot: then steps 2 and 4 are skipped and the claim, however many
workers its batch serves, runs four statements after the lock: one count, one budget
update, one insert and one update of the sweep, all built once in ``queries``.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row

from hypersweep.service import queries as q
from hypersweep.service.errors import Conflict
from hypersweep.service.models import utcnow
from hypersweep.service.schemas import ClaimedTrial, FinishedIn
from hypersweep.service.search.policy import SearchFailed
from hypersweep.service.search.space import dump_space
from hypersweep.service.settings import trial_settings
from hypersweep.service.statuses import SweepStatus, TrialStatus
from hypersweep.service.store import Ended, Ending, Store, sanity

__all__ = ["LINES_KEPT", "Claims", "trial_settings"]

logger = logging.getLogger(__name__)

#: Sweeps whose claim lines are kept; past this, idle lines are dropped.
LINES_KEPT = 1024


@dataclass(eq=False)
class _Ask:
    """One claim waiting in its sweep's line: what it asks for, then what it got."""

    worker_id: str
    count: int
    #: Results the claim carries, finished in the same transaction before it is served.
    endings: Sequence[Ending] = ()
    done: threading.Event = field(default_factory=threading.Event)
    #: Set when this claim is to serve the line's next batch instead of being served.
    lead: bool = False
    trials: list[ClaimedTrial] = field(default_factory=list)
    #: Per ending, the trial as it ended or why it could not.
    ended: list[Ended] = field(default_factory=list)
    error: BaseException | None = None

    def outcome(self) -> _Ask:
        if self.error is not None:
            raise self.error
        return self


@dataclass(eq=False)
class _ClaimLine:
    """The claims of one sweep waiting for a transaction. ``busy`` while a claim serves
    the line; the others wait for it, or for their turn to lead."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    waiting: list[_Ask] = field(default_factory=list)
    busy: bool = False


class Claims:
    """The claims of one process, on ``store``: its database, lease length and search
    policy. Errors: :class:`~hypersweep.service.errors.NotFound` for a sweep that does not
    exist; a claim that fails for any other reason fails every claim of its batch. A sweep
    whose search raises is not an error of the claim: the sweep ends ``failed``
    (``Store.fail_sweep``) and the claim is served by the other sweeps, or gets nothing."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lines: dict[int, _ClaimLine] = {}
        self._lines_lock = threading.Lock()

    def claim(
        self, *, worker_id: str, sweep_id: int | None = None, count: int = 1, program: str | None = None
    ) -> list[ClaimedTrial]:
        """Give ``worker_id`` up to ``count`` trials, from one sweep or from any running
        sweep of ``program`` (oldest first). Re-queued trials go out before new ones are
        generated."""
        if sweep_id is not None:
            self._check_program(sweep_id, program)
        candidates = [sweep_id] if sweep_id is not None else self.store.running_sweep_ids(program=program)
        claimed: list[ClaimedTrial] = []
        for candidate in candidates:
            claimed += self._claim_from(candidate, worker_id, count - len(claimed)).trials
            if len(claimed) >= count:
                break
        return claimed

    def finish_and_claim(
        self,
        *,
        results: Sequence[FinishedIn],
        worker_id: str,
        sweep_id: int | None = None,
        count: int = 1,
        program: str | None = None,
    ) -> tuple[list[Ended], list[ClaimedTrial]]:
        """``Store.finish_many`` then :meth:`claim`: per result, the trial as it ended or
        why it could not; and the trials claimed. With a ``sweep_id`` both happen in the
        claim's transaction (the claims of the sweep waiting together share it, results
        and all)."""
        if sweep_id is None:
            ended = self.store.finish_many(results=results)
            return ended, self.claim(worker_id=worker_id, count=count, program=program)
        self._check_program(sweep_id, program)
        ask = self._claim_from(sweep_id, worker_id, count, [Ending.of(result) for result in results])
        return ask.ended, ask.trials

    def _check_program(self, sweep_id: int, program: str | None) -> None:
        """Refuse a claim on a sweep whose program is not the claimer's."""
        facts = self.store.facts(sweep_id)
        if facts.program != program:
            theirs = f"program {facts.program!r}" if facts.program else "the built-in trainer"
            ours = f"program {program!r}" if program else "the built-in trainer"
            raise Conflict(f"sweep {sweep_id} runs {theirs}; this worker runs {ours}")

    def _claim_from(self, sweep_id: int, worker_id: str, count: int, endings: Sequence[Ending] = ()) -> _Ask:
        """Claim from one sweep, after finishing ``endings``, through the sweep's line."""
        with self._lines_lock:
            line = self._lines.get(sweep_id)
            if line is None:
                if len(self._lines) >= LINES_KEPT:
                    self._lines = {k: v for k, v in self._lines.items() if v.busy}
                line = self._lines[sweep_id] = _ClaimLine()
        ask = _Ask(worker_id, count, endings)
        with line.lock:
            line.waiting.append(ask)
            follow = line.busy
            line.busy = True
        if follow:
            ask.done.wait()
            if not ask.lead:
                return ask.outcome()
        # This claim leads: serve every claim waiting now, then hand the line on.
        with line.lock:
            batch, line.waiting = line.waiting, []
        try:
            try:
                served = self._claim_batch(sweep_id, batch)
            except SearchFailed as failure:
                # The sweep cannot produce trials. Instead of failing this claim, and every
                # claim after it: the results the batch carries are finished (the
                # transaction that failed took them back), then the sweep ends, and the
                # batch gets no trials from it.
                served = self._claim_batch(sweep_id, batch, serve=False)
                self.store.fail_sweep(failure)
        except BaseException as exc:  # every claim of the batch shares its fate
            for waiting in batch:
                waiting.error = exc
        else:
            for waiting, trials in zip(batch, served, strict=True):
                waiting.trials = trials
        for waiting in batch:
            if waiting is not ask:
                waiting.done.set()
        with line.lock:
            if line.waiting:
                line.waiting[0].lead = True
                line.waiting[0].done.set()
            else:
                line.busy = False
        return ask.outcome()

    def _claim_batch(self, sweep_id: int, asks: Sequence[_Ask], *, serve: bool = True) -> list[list[ClaimedTrial]]:
        """Serve ``asks`` in one transaction, in order: first the results they carry (each
        ask's ``ended``), then the claims, each up to its ``count`` (unless not ``serve``:
        then only the results, and this sweep's stage is left as it is). A stage of this
        sweep that the results end is moved on by the claim itself, or after the commit when
        the claim hands out nothing; other sweeps' after the commit."""
        now = utcnow()
        stages_may_end: set[int] = set()
        with self.store.db.transaction() as conn:
            # The sweep's lock before any trial's, the order every claim, cancel and lease
            # expiry takes them in: two transactions never wait on each other.
            sweep = self.store.lock_sweep(conn, sweep_id)
            for ask in asks:
                if ask.endings:
                    ask.ended, ending = self.store.finish_in(conn, ask.endings, now)
                    stages_may_end |= ending
            served = self._serve(conn, sweep, asks, now) if serve else [[] for _ in asks]
        if any(served) or not serve:
            # This sweep has trials running again, so its stage is not done; or its stage
            # is the caller's to deal with.
            stages_may_end.discard(sweep_id)
        for ended in sorted(stages_may_end):
            # After the commit, as a plain finish does: a finish that committed while this
            # transaction ran saw these trials still running, and left the stage to us.
            try:
                self.store.advance_after(ended, now)
            except Exception:
                # The results and leases are committed; the sweep's next claim moves it on.
                logger.exception("sweep %s: could not advance after finishing trials", ended)
        return served

    def _serve(
        self, conn: Connection, sweep: Row[*tuple[Any, ...]], asks: Sequence[_Ask], now: datetime
    ) -> list[list[ClaimedTrial]]:
        """The claim algorithm (steps 1 to 6 of the module's docstring) on ``sweep``, the
        row the caller locked: per ask, in order, the trials it gets."""
        served: list[list[ClaimedTrial]] = [[] for _ in asks]
        if sweep.status == SweepStatus.queued:
            # Waiting for its sanity checks: the sanity trial is all it hands out.
            held = self._serve_sanity(conn, sweep, asks, now)
            if held is not None:
                return held
            sweep = self.store.lock_sweep(conn, sweep.id)  # started just now
        if sweep.status != SweepStatus.running:
            return served
        sweep_id = sweep.id
        counting = {"b_sweep_id": sweep_id, "b_now": now}
        running, queued, expired = conn.execute(q.ACTIVE_COUNTS, counting).one()
        if expired:
            self.store.expire_in(conn, sweep_id, max_attempts=sweep.max_attempts, now=now)
            running, queued, _ = conn.execute(q.ACTIVE_COUNTS, counting).one()
        # Free slots go to the asks in order: slot i is ``asks[holders[i]]``'s.
        holders: list[int] = []
        free = sweep.parallelism - running
        for position, ask in enumerate(asks):
            holders += [position] * max(0, min(ask.count, free - len(holders)))
        if not holders:
            return served
        trials = self.store.trials_in(conn)
        stage = sweep.current_stage
        plan = self.store.policy.plan(trials, sweep_id, stage, minimize=sweep.minimize)
        epochs = {stage: plan.epochs}
        expires = now + self.store.lease
        leased: list[dict[str, Any]] = []  # the rows of the trials handed out, slot by slot

        def lease_queued() -> None:
            picking = {"b_sweep_id": sweep_id, "b_slots": len(holders) - len(leased)}
            picked = [dict(row._mapping) for row in conn.execute(q.QUEUED_TRIALS, picking)]
            for row in picked:
                leased.append(_lease(row, asks[holders[len(leased)]].worker_id, expires, now))
            if picked:
                conn.execute(q.UPDATE_TRIAL, [{"b_trial_id": row["id"], **_leased_columns(row)} for row in picked])

        if queued:
            # Queued trials belong to the current stage: a stage starts only once the one
            # before has none queued or running.
            lease_queued()
        number = sweep.trials_created
        fresh: list[dict[str, Any]] = []
        while len(leased) < len(holders):
            first, taken, chosen = _take_budget(conn, sweep_id, stage, len(holders) - len(leased))
            if taken:
                # The designer numbers its own trials: the stage's enqueued ones are not its.
                suggested = self.store.policy.suggest(trials, plan, first - chosen, taken)
                if len(suggested) < taken:
                    # The designer has nothing more until a running trial ends (local
                    # search waits on its starts): the budget it did not use goes back.
                    conn.execute(
                        q.TAKE_BUDGET, {"b_sweep_id": sweep_id, "b_stage": stage, "b_slots": len(suggested) - taken}
                    )
                for index, params in enumerate(suggested):
                    row = {
                        "sweep_id": sweep_id,
                        "stage": stage,
                        "stage_index": first + index,
                        "number": number + len(fresh),
                        "params": params,
                        "attempt": 1,
                        "metrics": {},
                        "created_at": now,
                    }
                    fresh.append(row)
                    leased.append(_lease(row, asks[holders[len(leased)]].worker_id, expires, now))
            # Every slot is filled, or the stage has handed out all of its budget: while some
            # of it is active there is nothing more to give (the next stage starts once those
            # trials end); otherwise it ends here, and the next one, if any, gives the rest.
            if len(leased) == len(holders) or running or leased:
                break
            if not self.store.advance_in(conn, sweep_id, now):
                break
            stage += 1
            plan = self.store.policy.plan(trials, sweep_id, stage, minimize=sweep.minimize)
            epochs[stage] = plan.epochs
            # The trials enqueued for the new stage before it started are queued now: first.
            lease_queued()
            number = conn.execute(q.TRIALS_CREATED, {"b_sweep_id": sweep_id}).scalar_one()
        if fresh:
            ids = conn.execute(q.INSERT_TRIALS, fresh).scalars().all()
            conn.execute(q.BUMP_TRIALS_CREATED, {"b_sweep_id": sweep_id, "b_slots": len(fresh)})
            for row, trial_id in zip(fresh, ids, strict=True):
                row.update(id=trial_id, value=None, finished_at=None, error=None)
        facts = self.store.sweep_facts(conn, sweep_id)
        for position, row in zip(holders, leased, strict=False):
            settings = trial_settings(facts.trainer, epochs[row["stage"]], row["params"], builtin=facts.program is None)
            pruning = self.store.pruners.of(conn, sweep_id, row["stage"])
            prune_epochs = sorted(pruning.steps) if pruning is not None else []
            served[position].append(ClaimedTrial(**row, trainer=settings, prune_epochs=prune_epochs))
        return served

    def _serve_sanity(
        self, conn: Connection, sweep: Row[*tuple[Any, ...]], asks: Sequence[_Ask], now: datetime
    ) -> list[list[ClaimedTrial]] | None:
        facts = self.store.sweep_facts(conn, sweep.id)
        plan = self.store.policy.plan(self.store.trials_in(conn), sweep.id, 0, minimize=sweep.minimize)
        settings = trial_settings(facts.trainer, plan.epochs, {}, builtin=facts.program is None)
        # The worker tries learning rates across the space's lr axis (``hypersweep.sanity``).
        settings["sanity_space"] = dump_space(plan.space)
        return sanity.serve_in(conn, sweep, asks, now, lease=self.store.lease, settings=settings)


def _take_budget(conn: Connection, sweep_id: int, stage: int, wanted: int) -> tuple[int, int, int]:
    """Take up to ``wanted`` trials of the stage's budget: the index in the stage of the
    first, how many, and how many of the stage's trials so far were enqueued. The sweep's
    lock, which the caller holds, keeps the budget as read between the statements."""
    taken = conn.execute(q.TAKE_BUDGET, {"b_sweep_id": sweep_id, "b_stage": stage, "b_slots": wanted}).one_or_none()
    if taken is not None:
        return taken.generated - wanted, wanted, taken.enqueued
    budget = conn.execute(q.STAGE_BUDGET, {"b_sweep_id": sweep_id, "b_stage": stage}).one()
    left = budget.trials - budget.generated
    if left <= 0:
        return budget.generated, 0, budget.enqueued
    conn.execute(q.TAKE_BUDGET, {"b_sweep_id": sweep_id, "b_stage": stage, "b_slots": left})
    return budget.generated, left, budget.enqueued


_LEASE_COLUMNS = ("status", "worker_id", "lease_token", "lease_expires_at", "started_at")


def _lease(row: dict[str, Any], worker_id: str, expires: datetime, now: datetime) -> dict[str, Any]:
    """``row``, a trial's, leased to ``worker_id`` until ``expires``: running from ``now``
    with a new token."""
    row.update(
        status=TrialStatus.running,
        worker_id=worker_id,
        lease_token=secrets.token_urlsafe(24),
        lease_expires_at=expires,
        started_at=now,
    )
    return row


def _leased_columns(row: Mapping[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in _LEASE_COLUMNS}
