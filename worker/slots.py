"""Where ``hypersweep worker``'s agents run: one in this process, or one per child process
with ``--concurrency N``; each with its share of the cores and, with ``--devices``, a
device of its own.

With ``--concurrency N`` each child gets ``max(1, cores // N)`` torch threads, so that N
trials side by side do not fight over the same cores, and its own worker id
(``<hostname>-<pid>-<index>``, or ``<--worker-id>-<index>``).

Signals: SIGTERM (and a first Ctrl-C) stops each agent after its current epoch; the trial
it was training is released, so the server re-queues it at once, and the process exits 0.
A second Ctrl-C quits at once; the lease then covers the trial, as it does for SIGKILL.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

from hypersweep.cores import cpu_cores
from hypersweep.worker.client import REPORT_EVERY_SECONDS, ServiceClient, ServiceError

if TYPE_CHECKING:
    from hypersweep.worker.runners.base import Runner

__all__ = ["Program", "parse_devices", "run_worker"]

logger = logging.getLogger("worker")


@dataclass(frozen=True)
class Program:
    """A user's program for the worker to run instead of the built-in trainer: ``function``
    (``MODULE:CALLABLE``) or ``command`` (its argv, with placeholders), for sweeps whose
    ``program`` is ``name``."""

    name: str
    function: str | None = None
    command: tuple[str, ...] = ()
    timeout: float | None = None
    max_failures: int = 5
    grace: float = 10.0

    def runner(self) -> Runner:
        """The runner for this program; raises ``ProgramError`` when it cannot run at all."""
        from hypersweep.worker.runners.command import CommandRunner
        from hypersweep.worker.runners.function import FunctionRunner, load_function

        if self.function is not None:
            return FunctionRunner(load_function(self.function), grace=self.grace)
        return CommandRunner(self.command, grace=self.grace)


def parse_devices(value: str | None) -> list[str]:
    """``--devices``: ``cuda:0,cuda:1`` (or ``0,1``), ``cpu``, or ``all`` (every GPU PyTorch
    sees). Raises ``ValueError`` with a sentence for anything else."""
    if value is None:
        return []
    if value.strip() == "all":
        try:
            import torch
        except ImportError:
            raise ValueError("--devices all needs PyTorch to count the GPUs; list them instead") from None
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError("--devices all: no CUDA GPU is visible on this machine")
        return [f"cuda:{index}" for index in range(count)]
    devices = []
    for part in value.split(","):
        name = part.strip()
        if name.isdigit():
            name = f"cuda:{name}"
        if name != "cpu" and not (name.startswith("cuda:") and name[5:].isdigit()):
            raise ValueError(f"--devices takes cuda:N, N, cpu or all, separated by commas; not {part.strip()!r}")
        devices.append(name)
    return devices


def _take_device(device: str | None) -> str | None:
    """Give this process ``device`` alone: a GPU through ``CUDA_VISIBLE_DEVICES`` (it is then
    ``cuda:0`` here and in every program this process starts), or no GPU for ``cpu``.

    ``cuda:N`` counts among the GPUs this process sees, as PyTorch does: when the
    environment already narrows them (Slurm sets ``CUDA_VISIBLE_DEVICES=3,5`` for a job
    given GPUs 3 and 5), ``cuda:1`` is its second entry, ``5``, not the machine's GPU 1."""
    if device is None:
        return None
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return "cpu"
    index = int(device.removeprefix("cuda:"))
    visible = [part.strip() for part in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if part.strip()]
    os.environ["CUDA_VISIBLE_DEVICES"] = visible[index] if index < len(visible) else str(index)
    return "cuda:0"


def run_worker(
    *,
    server: str,
    token: str | None,
    sweep_id: int | None,
    concurrency: int,
    worker_id: str | None = None,
    data_dir: str | None = None,
    once: bool = False,
    fuse: int = 1,
    report_every: float = REPORT_EVERY_SECONDS,
    program: Program | None = None,
    devices: list[str] | None = None,
    exit_when_idle: float | None = None,
    checkpoint_root: str | None = None,
) -> int:
    """Run ``concurrency`` agents until their work is done or they are told to stop.
    Each claims up to ``fuse`` trials at once and trains those it can as one fused model,
    and sends each trial's new curve points at most every ``report_every`` seconds.
    With ``program``, each runs that program's trials instead. With ``devices``, agent
    ``i`` gets ``devices[i % len(devices)]`` alone. With ``exit_when_idle``, each agent
    stops once it has waited that many seconds without being handed a trial, and the worker
    exits 0 when all have. With ``checkpoint_root``, each trial gets a checkpoint folder
    under it (``worker.checkpoints``).

    Returns the exit code: 0 when every agent stopped cleanly (nothing left in the sweep,
    ``once`` satisfied, idle for ``exit_when_idle``, or SIGTERM), 1 when one could not reach the server or was refused
    (e.g. the sweep does not exist), or gave up on a program whose trials kept failing.
    Must be called from the main thread, which owns signal handlers.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    if fuse < 1:
        raise ValueError(f"fuse must be at least 1, not {fuse}")
    if report_every < 0:
        raise ValueError(f"report_every must not be negative, not {report_every}")
    devices = devices or []
    slot = _Slot(
        server,
        token,
        sweep_id,
        data_dir,
        once,
        concurrency,
        fuse,
        report_every,
        program,
        exit_when_idle,
        checkpoint_root,
    )
    if concurrency == 1:
        own_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-0"
        return _agent_main(slot, own_id, _take_device(devices[0] if devices else None))

    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(
            target=_child_main,
            args=(slot, worker_id, index, devices[index % len(devices)] if devices else None),
            name=f"worker-{index}",
        )
        for index in range(concurrency)
    ]

    forwarded = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal forwarded
        forwarded = True
        for child in children:
            if child.pid is not None and child.exitcode is None:
                os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    # Ctrl-C reaches every process in the terminal's process group, the children
    # included; the parent just waits for them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for child in children:
        child.start()
    for child in children:
        child.join()
    # A child still importing torch when SIGTERM came dies of it before its handler is
    # in place; it had claimed nothing, so that is a clean stop too.
    clean = {0, -signal.SIGTERM} if forwarded else {0}
    return 0 if all(child.exitcode in clean for child in children) else 1


@dataclass(frozen=True)
class _Slot:
    """What every agent of one ``hypersweep worker`` shares; ``share`` is how many there are."""

    server: str
    token: str | None
    sweep_id: int | None
    data_dir: str | None
    once: bool
    share: int
    fuse: int
    report_every: float
    program: Program | None
    exit_when_idle: float | None = None
    checkpoint_root: str | None = None


def _child_main(slot: _Slot, worker_id: str | None, index: int, device: str | None) -> None:
    base = worker_id or f"{socket.gethostname()}-{os.getpid()}"
    sys.exit(_agent_main(slot, f"{base}-{index}", _take_device(device)))


def _agent_main(slot: _Slot, worker_id: str, device: str | None) -> int:
    """Run one agent in this process until its work is done; the process's exit code."""
    server, program, share = slot.server, slot.program, slot.share
    # Imported here so that `--help` does not pay for importing torch.
    from hypersweep.worker.agent import Agent
    from hypersweep.worker.runners.function import ProgramError

    _configure_logging(worker_id)
    runner = None
    if program is None:
        from hypersweep.trainer import set_threads

        threads = set_threads(share)
    else:
        try:
            runner = program.runner()
        except ProgramError as exc:
            logger.error("%s", exc)
            return 1
        threads = _program_threads(share)
    with ServiceClient.connect(server, token=slot.token) as client:
        agent = Agent(
            client,
            worker_id=worker_id,
            sweep_id=slot.sweep_id,
            data_dir=slot.data_dir,
            device=device,
            once=slot.once,
            fuse=slot.fuse,
            report_every=slot.report_every,
            runner=runner,
            program=program.name if program else None,
            timeout=program.timeout if program else None,
            max_failures=program.max_failures if program else None,
            exit_when_idle=slot.exit_when_idle,
            checkpoint_root=slot.checkpoint_root,
        )
        interrupts = 0

        def on_signal(signum: int, frame: FrameType | None) -> None:
            nonlocal interrupts
            if signum == signal.SIGINT:
                interrupts += 1
                if interrupts > 1:
                    raise KeyboardInterrupt
            logger.info("%s: stopping after the current epoch", signal.Signals(signum).name)
            agent.request_stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        serving = f"program {program.name!r}" if program else "the built-in trainer"
        logger.info("worker %s serving %s for %s (threads: %d)", worker_id, server, serving, threads)
        # Torch and the rest loaded by now live as long as the process: kept out of the
        # collector's full passes, which would otherwise walk them all again and again.
        gc.collect()
        gc.freeze()
        try:
            ran = agent.run()
        except ServiceError as exc:
            logger.error("%s", exc)
            return 1
        except KeyboardInterrupt:
            # The second Ctrl-C: quit now and let the lease hand the trial back.
            logger.warning("interrupted; the current trial returns to the queue when its lease expires")
            return 130
    if agent.gave_up is not None:
        logger.error("giving up after %d trial(s): %s", ran, agent.gave_up)
        return 1
    logger.info("worker %s done after %d trial(s)", worker_id, ran)
    return 0


def _program_threads(share: int) -> int:
    """A program slot's share of the cores, for the programs it runs: PyTorch's threads in
    this process when it has PyTorch (a function trains here), and ``OMP_NUM_THREADS`` for
    the commands it starts, unless the environment sets that already."""
    threads = max(1, cpu_cores() // max(1, share))
    if threads < (os.cpu_count() or 1):  # side by side, or in a container limited to fewer cores
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    torch = sys.modules.get("torch")  # imported by a function program's module
    if torch is not None:
        torch.set_num_threads(threads)
    return threads


def _configure_logging(worker_id: str) -> None:
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {worker_id} %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # One line per HTTP request drowns out the trials' own progress.
    logging.getLogger("httpx").setLevel(logging.WARNING)
