"""The worker's pull loop: claim a trial, train it, stream its epochs back, finish it.

One :class:`Agent` runs one trial at a time in the calling thread. The trainer's
``on_epoch`` callback queues each epoch's point (``step`` = epoch, from 1) for a
background thread that sends the points gathered at most every ``report_every`` seconds
in one request (the last ones go with the finish), and renews the lease with a heartbeat
whenever a third of the lease has passed without a report; training does not wait for
the network. The callback stops training when the server has answered ``"stop"`` (to a
report or a heartbeat: seen by the next epoch end), when the lease is lost (409), or when
the agent was asked to stop (SIGTERM).

How a trial ends, seen from the server:

* the trainer returns: ``finish`` with ``completed`` or ``diverged`` and its final metrics;
* the trainer raises: ``finish`` with ``failed`` and a traceback summary as ``error``;
* the lease is lost: nothing more is sent, the trial belongs to someone else now;
* the agent is asked to stop mid-trial: ``release``, so the server re-queues it at once.

A worker that dies without a word (SIGKILL, power loss) is covered by the lease: it
expires and the server re-queues the trial.

With ``fuse`` above 1 the agent claims up to that many trials at once and trains those
that can share one model (``worker.fused.group_trials``) together with
``trainer.fused.train_fused``. Each trial of a group keeps its own channel (reports,
heartbeats, the server's answers) and ends as it would alone, as soon as it ends: a
diverged member is finished while the others train on, a member told to stop or whose
lease is lost leaves the group at its next epoch end. The members that complete end
together, and one request finishes them all and claims what comes next.

With a ``runner`` the agent runs a user's own program instead (``worker.runners``: a
function or a command per trial, never fused), claiming only trials of sweeps whose
``program`` it names. Each trial's reports go through a :class:`~.runners.base.Watch`,
which applies the divergence rule and turns the channel's news (the server's stop, a lost
lease) and the agent's own stop into the end of the run. After ``max_failures`` failed
trials in a row the agent stops claiming, gives back what it holds, and says why in
:attr:`Agent.gave_up`: a broken program must not burn a sweep.

The module is longer than most (about 600 lines) because it is one class: its loop and its
three ways to run a trial (alone, fused, a program) share the ways a trial ends (a finish
carried by the next claim, a finish alone, a release, an abandoned lease), and splitting
them would scatter that one protocol. The channel each trial talks through is
``worker.channel``.
"""

from __future__ import annotations

import logging
import math
import random
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from hypersweep.limits import MAX_CLAIM as MAX_FUSE
from hypersweep.sanity import SANITY_INDEX, to_metrics
from hypersweep.worker.channel import TrialChannel, channel_for, trial_name
from hypersweep.worker.checkpoints import checkpoint_dir
from hypersweep.worker.client import (
    REPORT_EVERY_SECONDS,
    RETRIED_STATUSES,
    Ending,
    FinishStatus,
    LeaseLost,
    ServiceClient,
    ServiceError,
    ServiceUnavailable,
)
from hypersweep.worker.fused import group_trials
from hypersweep.worker.runners.base import Runner, RunResult, Stop, StopCause, TrialRun, Watch, divergence_settings
from hypersweep.worker.wire import ClaimedTrial

if TYPE_CHECKING:
    from hypersweep.trainer import EpochCallback, TrainResult

__all__ = ["MAX_FUSE", "REPORT_EVERY_SECONDS", "Agent", "IdleBackoff", "Outcome"]

logger = logging.getLogger(__name__)

#: Longest error text sent with a failed trial; the tail of a traceback is what matters.
MAX_ERROR_CHARS = 4000
#: The longest training waits for the answer to a report at an epoch where the server may
#: prune the trial, in seconds; past it, the answer is read at the next epoch end.
PRUNE_WAIT_SECONDS = 5.0
#: How often an idle agent checks whether it was asked to stop, in seconds.
IDLE_SLICE = 0.1
#: The most curve points the results carried by one claim hold together (about 130 bytes
#: each): the claim's body stays far below the server's limit on a request's size.
CARRIED_POINTS = 2000
#: What a request ends with when the server cannot be reached: no answer, or a gateway's or
#: the server's own "unavailable" (its database is down).
_UNREACHABLE = frozenset({None, *RETRIED_STATUSES})


class Outcome(StrEnum):
    """What became of one claimed trial, from the worker's side."""

    COMPLETED = "completed"
    DIVERGED = "diverged"
    FAILED = "failed"
    LEASE_LOST = "lease_lost"
    RELEASED = "released"
    #: The server stopped it: its sweep was cancelled, and it stays cancelled (the final
    #: metrics the worker sent are recorded).
    CANCELLED = "cancelled"
    #: The server stopped it early: a losing trial of a stage with a pruner.
    PRUNED = "pruned"
    #: The server could not be told how the trial ended; its lease will lapse.
    UNDELIVERED = "undelivered"


@dataclass
class IdleBackoff:
    """Seconds to wait between empty claims: the n-th wait in a row is drawn uniformly
    from ``[base / 2, min(cap, base * 2**n)]``, so idle workers poll less and less often
    and do not poll in lockstep. :meth:`reset` once there is work again."""

    base: float = 0.5
    cap: float = 10.0
    rng: random.Random = field(default_factory=random.Random)
    _failures: int = field(default=0, init=False, repr=False)

    def next_delay(self) -> float:
        delay = self.rng.uniform(self.base / 2, min(self.cap, self.base * 2.0**self._failures))
        self._failures += 1
        return delay

    def reset(self) -> None:
        self._failures = 0


def _name(trial: ClaimedTrial) -> str:
    return trial_name(trial.number, trial.id)


class Agent:
    """Pulls trials from the service and trains them, one at a time, until told to stop.

    ``sweep_id`` limits the agent to one sweep, and :meth:`run` returns once that sweep is
    no longer running and nothing is claimable; without it the agent serves every sweep
    and runs until :meth:`request_stop`. ``once`` makes :meth:`run` return after the first
    trial it runs (or the first empty claim). ``train_fn`` is the trainer entry point
    (``trainer.train``); it is a parameter so that a benchmark can time the same path.

    ``fuse`` is how many trials one claim asks for; those that can be fused are trained as
    one model by ``fused_train_fn`` (``trainer.fused.train_fused``), the rest one by one.
    With ``once``, :meth:`run` returns after the trials of its first claim.

    ``report_every`` is how often, at most, each trial's new curve points are sent, in
    seconds; 0 sends every epoch as it ends.

    ``runner`` runs a user's program instead of the built-in trainer (see the module doc),
    for trials of sweeps whose ``program`` is ``program``; ``timeout`` fails a trial that
    runs longer (seconds), and ``max_failures`` failed trials in a row end :meth:`run`.

    ``exit_when_idle`` makes :meth:`run` return once the agent has waited that many seconds
    for work without a claim handing it a trial (counted from its start, or from the end
    of the last trials it ran); a worker started for a batch job ends when the queue has
    run dry instead of polling forever.

    ``checkpoint_root`` gives every trial a checkpoint folder (``worker.checkpoints``): the
    built-in trainer saves each epoch there and resumes from it on the trial's next
    attempt; a program gets the folder as ``trial.checkpoint_dir`` or
    ``HYPERSWEEP_CHECKPOINT_DIR``. A fused group neither saves nor resumes: its members
    start afresh on every attempt, except a trial that finds a checkpoint, which is taken
    out of its group and resumed alone.
    """

    def __init__(
        self,
        client: ServiceClient,
        *,
        worker_id: str,
        sweep_id: int | None = None,
        data_dir: str | None = None,
        device: str | None = None,
        once: bool = False,
        backoff: IdleBackoff | None = None,
        train_fn: Callable[..., Any] | None = None,
        fuse: int = 1,
        fused_train_fn: Callable[..., Any] | None = None,
        report_every: float = REPORT_EVERY_SECONDS,
        runner: Runner | None = None,
        program: str | None = None,
        timeout: float | None = None,
        max_failures: int | None = None,
        exit_when_idle: float | None = None,
        checkpoint_root: str | None = None,
    ) -> None:
        if not 1 <= fuse <= MAX_FUSE:
            raise ValueError(f"fuse must be between 1 and {MAX_FUSE}, not {fuse}")
        if (runner is None) != (program is None):
            raise ValueError("a runner and a program go together")
        if runner is not None and fuse != 1:
            raise ValueError("programs are not fused: fuse must be 1 with a runner")
        if runner is None and (train_fn is None or fused_train_fn is None):
            # The built-in trainer, imported only by an agent that trains with it (PyTorch).
            from hypersweep.trainer import train
            from hypersweep.trainer.fused import train_fused

            train_fn = train_fn or train
            fused_train_fn = fused_train_fn or train_fused
        self.client = client
        self.worker_id = worker_id
        self.sweep_id = sweep_id
        self.data_dir = data_dir
        self.device = device
        self.once = once
        self.backoff = backoff or IdleBackoff()
        self.train_fn: Callable[..., Any] = train_fn or _unused
        self.fuse = fuse
        self.fused_train_fn: Callable[..., Any] = fused_train_fn or _unused
        self.report_every = report_every
        self.runner = runner
        self.program = program
        self.timeout = timeout
        self.max_failures = max_failures
        self.exit_when_idle = exit_when_idle
        self.checkpoint_root = checkpoint_root
        #: Why :meth:`run` gave up before its work was done (failures in a row, or a
        #: function that never returned); ``None`` while it has not.
        self.gave_up: str | None = None
        self._failures_in_a_row = 0
        self._last_error: str | None = None
        # A plain flag, not an Event: a signal handler sets it, and setting an Event takes
        # a lock that the interrupted main thread may be holding.
        self._stop_requested = False
        self.outcomes: list[Outcome] = []
        #: The numbers of the trials this agent holds, by id, for the logs.
        self._numbers: dict[int, int] = {}
        #: Trials leased with the last finish, to run next (``[]``: that claim found none).
        self._claimed_ahead: list[ClaimedTrial] | None = None

    def request_stop(self) -> None:
        """Finish the current epoch, release the current trial, and return from :meth:`run`.
        Safe to call from a signal handler or another thread."""
        self._stop_requested = True

    @property
    def stopping(self) -> bool:
        return self._stop_requested

    def run(self) -> int:
        """Claim and run trials until there is nothing left to do; return how many ran.

        Raises :class:`~worker.client.ServiceError` when the server refuses the agent (a
        sweep that does not exist, a wrong token) and, for an agent bound to a sweep, when
        the server stays unreachable through the client's retries. An agent serving every
        sweep is a long-lived daemon instead: it keeps waiting for the server to return.
        """
        ran = 0
        idle_since = time.monotonic()
        while not self.stopping:
            try:
                trials = self._claimed_ahead
                self._claimed_ahead = None
                if trials is None:
                    trials = self.client.claim(
                        worker_id=self.worker_id, sweep_id=self.sweep_id, count=self.fuse, program=self.program
                    )
                if not trials and (self.once or self._sweep_is_over()):
                    break
            except ServiceUnavailable as exc:
                if self.sweep_id is not None:
                    raise
                logger.warning("%s; waiting for the server", exc)
                trials = []
            if not trials:
                delay = self.backoff.next_delay()
                if self.exit_when_idle is not None:
                    left = idle_since + self.exit_when_idle - time.monotonic()
                    if left <= 0:
                        logger.info("no trial for %g s: exiting", self.exit_when_idle)
                        break
                    delay = min(delay, left)
                self._idle(delay)
                continue
            self.backoff.reset()
            self._numbers = {trial.id: trial.number for trial in trials}
            checks = [[trial] for trial in trials if trial.number == SANITY_INDEX]
            trials = [trial for trial in trials if trial.number != SANITY_INDEX]
            groups = [[trial] for trial in trials] if self.runner is not None else self._groups(trials)
            groups = checks + groups
            for position, group in enumerate(groups):
                if self.stopping:
                    # Claimed but never started: give them back rather than let leases lapse.
                    for unstarted in groups[position:]:
                        for trial in unstarted:
                            self._release(trial)
                    break
                # The last trials of a claim ask for the next ones with their finish.
                last = position == len(groups) - 1 and not self.once
                if group[0].number == SANITY_INDEX:
                    self.outcomes.append(self.run_sanity(group[0], claim_next=last))
                elif self.runner is not None:
                    self.outcomes.append(self.run_program(group[0], claim_next=last))
                elif len(group) == 1:
                    self.outcomes.append(self.run_trial(group[0], claim_next=last))
                else:
                    self.outcomes += self.run_group(group, claim_next=last)
                ran += len(group)
                if self.gave_up is not None:
                    for unstarted in groups[position + 1 :]:
                        for trial in unstarted:
                            self._release(trial)
                    self.request_stop()
                    break
            if self.once:
                break
            idle_since = time.monotonic()
        for trial in self._claimed_ahead or []:
            self._release(trial)
        self._claimed_ahead = None
        return ran

    def run_trial(self, trial: ClaimedTrial, *, claim_next: bool = False) -> Outcome:
        """Train one claimed trial and tell the server how it ended (see the module doc).
        With ``claim_next``, the finish also claims the trials :meth:`run` goes on with,
        in the same request, unless the agent is stopping."""
        channel = channel_for(self.client, trial, self.report_every)
        self._numbers[trial.id] = trial.number
        logger.info("%s: starting with %s", _name(trial), trial.params)

        def on_epoch(epoch: int, metrics: dict[str, float]) -> bool:
            channel.report(epoch, metrics, wait=_prune_wait(trial, epoch))
            # An answer to this report is seen at the next epoch end at the latest.
            return not (channel.stop_requested.is_set() or channel.lease_lost.is_set() or self.stopping)

        channel.start()
        try:
            # Only an agent with a root passes the folder: a train_fn need not know of checkpoints.
            saving = {"checkpoint_dir": self._checkpoint_dir(trial)} if self.checkpoint_root is not None else {}
            result = self.train_fn(
                trial.config, on_epoch=on_epoch, data_dir=self.data_dir, device=self.device, **saving
            )
        except Exception as exc:
            if not channel.lease_lost.is_set():
                logger.exception("%s: training raised", _name(trial))
            return self._end_failed(trial, channel, exc, claim_next=claim_next)
        return self._end(trial, channel, result, claim_next=claim_next)

    def run_program(self, trial: ClaimedTrial, *, claim_next: bool = False) -> Outcome:
        """Run one claimed trial with the agent's ``runner`` and tell the server how it ended,
        as :meth:`run_trial` does for the built-in trainer."""
        assert self.runner is not None
        channel = channel_for(self.client, trial, self.report_every)
        self._numbers[trial.id] = trial.number
        metric, factor = divergence_settings(trial.settings)

        def interrupted() -> Stop | None:
            if channel.lease_lost.is_set():
                return Stop(StopCause.LEASE_LOST, "the lease was lost")
            if channel.stop_requested.is_set():
                return Stop(StopCause.SERVER, _stop_sentence(channel))
            if self.stopping:
                return Stop(StopCause.SHUTDOWN, "the worker is stopping")
            return None

        def send(step: int, metrics: dict[str, float]) -> None:
            channel.report(step, metrics, wait=_prune_wait(trial, step))

        watch = Watch(
            send=send,
            interrupted=interrupted,
            metric=metric,
            factor=factor,
            timeout=self.timeout,
            label=_name(trial),
        )
        logger.info("%s: starting with %s", _name(trial), trial.params)
        channel.start()
        try:
            run = TrialRun(
                id=trial.id,
                number=trial.number,
                stage=trial.stage,
                params=trial.params,
                settings=trial.settings,
                device=self.device,
                sweep_id=trial.sweep_id,
                checkpoint_dir=self._checkpoint_dir(trial) if self.checkpoint_root is not None else None,
            )
            result = self.runner.run(run, watch)
        except Exception as exc:  # a runner's own failure, not the program's
            logger.exception("%s: the runner raised", _name(trial))
            result = RunResult("failed", dict(watch.latest), error=_error_text(exc))
        if getattr(self.runner, "stuck", False):
            self.gave_up = "a function did not return after it was told to stop; its thread still runs"
        unsent = channel.close()
        if channel.lease_lost.is_set():
            return self._abandon(trial.id)
        if result.stop is not None and result.stop.cause is StopCause.SHUTDOWN:
            # Interrupted by our own shutdown, not by the trial: let another worker redo it.
            return self._release(trial)
        status: FinishStatus = "completed" if result.status == "stopped" else result.status
        metrics = result.metrics
        if channel.stop_reason == "pruned" and result.status in ("stopped", "completed"):
            status = "pruned"
            metrics = {**metrics, "stop_reason": "pruned"} if "stop_reason" in metrics else metrics
        ending = Ending(trial.id, trial.lease_token, status, metrics, error=result.error, points=unsent)
        if result.stop is not None and result.status == "stopped":
            logger.info("%s: %s", _name(trial), result.stop.detail)
        outcome = self._finish(ending, claim_next=claim_next and self.gave_up is None)
        self._count_failure(outcome, result)
        return outcome

    def run_sanity(self, trial: ClaimedTrial, *, claim_next: bool = False) -> Outcome:
        """Run the sanity checks of the trial's sweep (``worker.sanity``) instead of training,
        and finish the trial with their results as its metrics (``failed`` when they could
        not run). The channel keeps the lease alive meanwhile."""
        from hypersweep.worker.sanity import SanityInterrupted, run_checks

        channel = channel_for(self.client, trial, self.report_every)
        self._numbers[trial.id] = trial.number

        def interrupted() -> Stop | None:
            if channel.lease_lost.is_set():
                return Stop(StopCause.LEASE_LOST, "the lease was lost")
            if channel.stop_requested.is_set():
                return Stop(StopCause.SERVER, "the server said stop (the sweep was cancelled)")
            if self.stopping:
                return Stop(StopCause.SHUTDOWN, "the worker is stopping")
            return None

        logger.info("sweep %s: running the sanity checks with %s", trial.sweep_id, trial.params)
        channel.start()
        status: FinishStatus = "completed"
        metrics: dict[str, Any] = {}
        error = None
        try:
            space = trial.settings.get("sanity_space") or {}
            settings = {k: v for k, v in trial.settings.items() if k != "sanity_space"}
            results = run_checks(
                settings,
                space,
                runner=self.runner,
                trial_id=trial.id,
                data_dir=self.data_dir,
                device=self.device,
                timeout=self.timeout,
                interrupted=interrupted,
            )
            metrics = to_metrics(results)
            for result in results:
                logger.info("sweep %s: sanity check %s: %s", trial.sweep_id, result.name, result.detail)
        except SanityInterrupted:
            channel.close()
            if channel.lease_lost.is_set():
                return self._abandon(trial.id)
            return self._release(trial)
        except Exception as exc:
            logger.exception("sweep %s: the sanity checks could not run", trial.sweep_id)
            status, error = "failed", _error_text(exc)
        unsent = channel.close()
        if channel.lease_lost.is_set():
            return self._abandon(trial.id)
        ending = Ending(trial.id, trial.lease_token, status, metrics, error=error, points=unsent)
        return self._finish(ending, claim_next=claim_next)

    def _count_failure(self, outcome: Outcome, result: RunResult) -> None:
        """Track failed trials in a row; past ``max_failures``, give up (see :attr:`gave_up`)."""
        if outcome is Outcome.FAILED:
            self._failures_in_a_row += 1
            # The last line says what went wrong (the exception, or the program's last words);
            # the whole text is the trial's ``error``.
            self._last_error = _last_line(result.error) or _NO_OBJECTIVE
        elif outcome in (Outcome.COMPLETED, Outcome.DIVERGED, Outcome.PRUNED):
            self._failures_in_a_row = 0
        if self.max_failures is not None and self._failures_in_a_row >= self.max_failures and self.gave_up is None:
            last = (self._last_error or "no error text")[-1000:]
            self.gave_up = f"{self._failures_in_a_row} trials failed in a row; the last one's error ends: {last}"

    def run_group(self, trials: Sequence[ClaimedTrial], *, claim_next: bool = False) -> list[Outcome]:
        """Train claimed trials that share a fusion key as one fused model and tell the
        server how each ended, each as :meth:`run_trial` would and as soon as it ends.
        Returns their outcomes in the order of ``trials``.

        The trials that complete all their epochs end together, with the group: they are
        finished in one request, which with ``claim_next`` also claims the trials
        :meth:`run` goes on with. When the fused training raises (a data set that cannot be
        loaded, say), every trial still running is finished as ``failed`` with the error.
        """
        channels = [channel_for(self.client, trial, self.report_every) for trial in trials]
        self._numbers.update((trial.id, trial.number) for trial in trials)
        names = ", ".join(_name(trial) for trial in trials)
        logger.info("training %d trials fused: %s", len(trials), names)

        def epoch_callback(trial: ClaimedTrial, channel: TrialChannel) -> EpochCallback:
            def on_epoch(epoch: int, metrics: dict[str, float]) -> bool:
                channel.report(epoch, metrics, wait=_prune_wait(trial, epoch))
                return not (channel.stop_requested.is_set() or channel.lease_lost.is_set() or self.stopping)

            return on_epoch

        # A trial that ends early (diverged, or stopped) is told from a thread of the pool,
        # so that the rest of the group trains on meanwhile.
        endings: dict[int, Future[Outcome]] = {}
        completed: dict[int, TrainResult] = {}
        with ThreadPoolExecutor(max_workers=len(trials), thread_name_prefix="trial-end") as pool:

            def on_result(member: int, result: TrainResult) -> None:
                if result.metrics.get("stop_reason") == "completed":
                    completed[member] = result
                else:
                    endings[member] = pool.submit(self._end, trials[member], channels[member], result)

            for channel in channels:
                channel.start()
            try:
                self.fused_train_fn(
                    [trial.config for trial in trials],
                    on_epoch=[epoch_callback(trial, channel) for trial, channel in zip(trials, channels, strict=True)],
                    on_result=on_result,
                    data_dir=self.data_dir,
                    device=self.device,
                )
            except Exception as exc:
                logger.exception("fused training raised: %s", names)
                for member, (trial, channel) in enumerate(zip(trials, channels, strict=True)):
                    if member not in endings and member not in completed:
                        endings[member] = pool.submit(self._end_failed, trial, channel, exc)
        outcomes = {member: future.result() for member, future in endings.items()}
        told: list[tuple[int, Ending]] = []
        for member, result in sorted(completed.items()):
            ending = self._ending(trials[member], channels[member], result)
            if isinstance(ending, Outcome):
                outcomes[member] = ending
            else:
                told.append((member, ending))
        if told:
            finished = self._finish_all([ending for _, ending in told], claim_next=claim_next)
            outcomes.update((member, outcome) for (member, _), outcome in zip(told, finished, strict=True))
        if len(outcomes) != len(trials):
            raise RuntimeError("fused training returned without ending every trial")
        return [outcomes[member] for member in range(len(trials))]

    def _end(
        self, trial: ClaimedTrial, channel: TrialChannel, result: TrainResult, *, claim_next: bool = False
    ) -> Outcome:
        """Close the channel and tell the server how a trial that trained to its end (or was
        stopped) went, with the curve points the channel had not sent."""
        ending = self._ending(trial, channel, result)
        if isinstance(ending, Outcome):
            return ending
        return self._finish(ending, claim_next=claim_next)

    def _ending(self, trial: ClaimedTrial, channel: TrialChannel, result: TrainResult) -> Ending | Outcome:
        """Close the channel; what to tell the server of a trial that trained to its end (or
        was stopped), with the curve points the channel had not sent, or the outcome when
        there is nothing to tell (its lease is lost, or our shutdown gave it back)."""
        unsent = channel.close()
        if channel.lease_lost.is_set():
            return self._abandon(trial.id)
        stopped_by_us = result.metrics.get("stop_reason") == "stopped"
        if self.stopping and stopped_by_us and not channel.stop_requested.is_set():
            # Interrupted by our own shutdown, not by the trial: let another worker redo it.
            return self._release(trial)
        status: FinishStatus = "diverged" if result.status == "diverged" else "completed"
        metrics = dict(result.metrics)
        if channel.stop_reason == "pruned" and status == "completed":
            # A fused group's member leaves the group here; the others train on.
            status = "pruned"
            metrics["stop_reason"] = "pruned"
        return Ending(trial.id, trial.lease_token, status, metrics, points=unsent)

    def _end_failed(
        self, trial: ClaimedTrial, channel: TrialChannel, exc: BaseException, *, claim_next: bool = False
    ) -> Outcome:
        unsent = channel.close()
        if channel.lease_lost.is_set():
            return self._abandon(trial.id)
        ending = Ending(trial.id, trial.lease_token, "failed", {}, error=_error_text(exc), points=unsent)
        return self._finish(ending, claim_next=claim_next)

    def _finish(self, ending: Ending, *, claim_next: bool = False) -> Outcome:
        """Tell the server how a trial ended; with ``claim_next`` (and the agent not
        stopping), claim the next trials in the same request and keep them for :meth:`run`."""
        [outcome] = self._finish_all([ending], claim_next=claim_next)
        return outcome

    def _finish_all(self, endings: Sequence[Ending], *, claim_next: bool = False) -> list[Outcome]:
        """:meth:`_finish` for several trials: with ``claim_next`` (and the agent not
        stopping), as many of them as :data:`CARRIED_POINTS` lets in the request that
        claims the next trials, the others first in one finish request each; otherwise one
        finish request each."""
        if not (claim_next and not self.stopping):
            return [self._finish_alone(ending) for ending in endings]
        carried: list[Ending] = []
        alone: dict[int, Outcome] = {}
        points = 0
        for index, ending in enumerate(endings):
            if points + len(ending.points) <= CARRIED_POINTS:
                carried.append(ending)
                points += len(ending.points)
            else:
                alone[index] = self._finish_alone(ending)
        outcomes = iter(self._carry(carried))
        return [alone[index] if index in alone else next(outcomes) for index in range(len(endings))]

    def _carry(self, endings: Sequence[Ending]) -> list[Outcome]:
        """Finish ``endings`` in the request that claims the next trials. When the server
        refuses that request as a whole (a 4xx, or a 500 that persists), each is finished
        on its own instead: a failure of the claim must not cost their results."""
        try:
            answers, self._claimed_ahead = self.client.finish_and_claim(
                endings, worker_id=self.worker_id, sweep_id=self.sweep_id, count=self.fuse, program=self.program
            )
        except ServiceError as exc:
            if exc.status_code in _UNREACHABLE or not endings:
                # No answer, or the server or its database out of reach, through every
                # retry: a finish would fare no better. The results are lost, not the
                # trials; their leases lapse and they run again.
                for ending in endings:
                    logger.error("%s: could not deliver its result: %s", self._name(ending.trial_id), exc)
                return [Outcome.UNDELIVERED] * len(endings)
            logger.warning("the claim carrying %d results failed (%s); finishing them one by one", len(endings), exc)
            return [self._finish_alone(ending) for ending in endings]
        if len(answers) != len(endings):
            logger.error("the claim answered %d outcomes for %d results: %.200r", len(answers), len(endings), answers)
            return [Outcome.UNDELIVERED] * len(endings)
        outcomes = []
        for ending, answer in zip(endings, answers, strict=True):
            if answer.code == httpx.codes.OK:
                outcomes.append(self._delivered(ending, answer.status))
            elif answer.code == httpx.codes.CONFLICT:
                outcomes.append(self._abandon(ending.trial_id))
            else:
                logger.error("%s: could not deliver its result: %s", self._name(ending.trial_id), answer.detail)
                outcomes.append(Outcome.UNDELIVERED)
        return outcomes

    def _finish_alone(self, ending: Ending) -> Outcome:
        try:
            trial = self.client.finish(
                ending.trial_id,
                lease_token=ending.lease_token,
                status=ending.status,
                metrics=ending.metrics,
                error=ending.error,
                points=ending.points,
            )
        except LeaseLost:
            return self._abandon(ending.trial_id)
        except ServiceError as exc:
            # The result is lost, not the trial: its lease lapses and it is run again.
            logger.error("%s: could not deliver its result: %s", self._name(ending.trial_id), exc)
            return Outcome.UNDELIVERED
        return self._delivered(ending, trial.status)

    def _delivered(self, ending: Ending, status: str | None) -> Outcome:
        """Log how a delivered ending left the trial: ``status`` is the server's word for it."""
        name = self._name(ending.trial_id)
        if status == "cancelled":
            # Trained until the server's stop: what was sent as its end is not how it ended.
            logger.info("%s: stopped by the server, its sweep was cancelled: %s", name, _summary(ending.metrics))
            return Outcome.CANCELLED
        if status == "pruned":
            logger.info("%s: pruned: %s", name, _summary(ending.metrics))
            return Outcome.PRUNED
        if status == "failed" and ending.status != "failed":
            # A program's trial that never reported the sweep's objective.
            logger.info("%s: failed: %s", name, _NO_OBJECTIVE)
            return Outcome.FAILED
        said = f": {_last_line(ending.error)}" if ending.error else f" {_summary(ending.metrics)}"
        logger.info("%s: %s%s", name, status or ending.status, said)
        return Outcome(ending.status)

    def _name(self, trial_id: int) -> str:
        return trial_name(self._numbers.get(trial_id), trial_id)

    def _release(self, trial: ClaimedTrial) -> Outcome:
        try:
            self.client.release(trial.id, lease_token=trial.lease_token)
        except LeaseLost:
            return self._abandon(trial.id)
        except ServiceError as exc:
            # Not fatal: the lease will lapse and the server re-queues the trial then.
            logger.warning("%s: release failed: %s", _name(trial), exc)
        logger.info("%s: released for another worker", _name(trial))
        return Outcome.RELEASED

    def _abandon(self, trial_id: int) -> Outcome:
        logger.warning("%s: abandoned, the lease is no longer ours", self._name(trial_id))
        return Outcome.LEASE_LOST

    def _idle(self, seconds: float) -> None:
        """Sleep up to ``seconds``, waking early (within IDLE_SLICE) when asked to stop."""
        deadline = time.monotonic() + seconds
        while not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(IDLE_SLICE, left))

    def _checkpoint_dir(self, trial: ClaimedTrial) -> Path:
        assert self.checkpoint_root is not None
        return checkpoint_dir(self.checkpoint_root, trial.sweep_id, trial.id)

    def _groups(self, trials: Sequence[ClaimedTrial]) -> list[list[ClaimedTrial]]:
        """The claimed trials of the built-in trainer in the groups they train in: those that
        can be fused together, and alone a trial with a checkpoint to resume from."""
        if self.checkpoint_root is None:
            return group_trials(trials)
        from hypersweep.trainer.checkpoint import CHECKPOINT_FILE

        root = Path(self.checkpoint_root)
        resuming = [t for t in trials if (root / str(t.sweep_id) / str(t.id) / CHECKPOINT_FILE).exists()]
        return [[trial] for trial in resuming] + group_trials([t for t in trials if t not in resuming])

    def _sweep_is_over(self) -> bool:
        if self.sweep_id is None:
            return False
        return not self.client.get_sweep(self.sweep_id).running


def _prune_wait(trial: ClaimedTrial, epoch: int) -> float | None:
    """How long training waits for the answer to this epoch's report: up to
    :data:`PRUNE_WAIT_SECONDS` at an epoch where the server may prune the trial (so a pruned
    trial trains no epoch more), else not at all."""
    return PRUNE_WAIT_SECONDS if epoch in trial.prune_epochs else None


def _stop_sentence(channel: TrialChannel) -> str:
    """Why the server said stop, for the logs and a program's ``TrialStopped``."""
    if channel.stop_reason == "pruned":
        return f"pruned by the server: {channel.stop_detail or 'a losing trial of its stage'}"
    return "the server said stop (the sweep was cancelled)"


def _unused(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("an agent that runs a program does not train with the built-in trainer")


_NO_OBJECTIVE = "the server recorded it as failed: the program ended without reporting the sweep's objective"


def _last_line(text: str | None) -> str | None:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else None


def _error_text(exc: BaseException) -> str:
    """The exception and the innermost frames that led to it, within MAX_ERROR_CHARS."""
    text = "".join(traceback.format_exception(exc, limit=-8))
    return text if len(text) <= MAX_ERROR_CHARS else "..." + text[-(MAX_ERROR_CHARS - 3) :]


def _summary(metrics: Mapping[str, Any]) -> str:
    keys = ("val_accuracy", "val_loss", "epochs_run", "stop_reason", "seconds")
    parts = []
    for key in keys:
        value = metrics.get(key)
        if isinstance(value, float) and math.isfinite(value):
            parts.append(f"{key}={value:.4g}")
        elif value is not None:
            parts.append(f"{key}={value}")
    return " ".join(parts)
