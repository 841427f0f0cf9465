"""``hypersweep worker``: run one agent in this process, or N agents in child processes.

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
from types import FrameType
from typing import Annotated

import typer

from hypersweep.limits import MAX_CLAIM
from hypersweep.worker.client import REPORT_EVERY_SECONDS, ServiceClient, ServiceError

__all__ = ["DEFAULT_SERVER", "run_worker", "worker_command"]

DEFAULT_SERVER = "http://127.0.0.1:8000"

logger = logging.getLogger("worker")


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
) -> int:
    """Run ``concurrency`` agents until their work is done or they are told to stop.
    Each claims up to ``fuse`` trials at once and trains those it can as one fused model,
    and sends each trial's new curve points at most every ``report_every`` seconds.

    Returns the exit code: 0 when every agent stopped cleanly (nothing left in the sweep,
    ``once`` satisfied, or SIGTERM), 1 when one could not reach the server or was refused
    (e.g. the sweep does not exist). Must be called from the main thread, which owns
    signal handlers.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    if fuse < 1:
        raise ValueError(f"fuse must be at least 1, not {fuse}")
    if report_every < 0:
        raise ValueError(f"report_every must not be negative, not {report_every}")
    if concurrency == 1:
        own_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-0"
        return _agent_main(
            server, token, sweep_id, own_id, data_dir, once, share=1, fuse=fuse, report_every=report_every
        )

    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(
            target=_child_main,
            args=(server, token, sweep_id, worker_id, index, data_dir, once, concurrency, fuse, report_every),
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


def _child_main(
    server: str,
    token: str | None,
    sweep_id: int | None,
    worker_id: str | None,
    index: int,
    data_dir: str | None,
    once: bool,
    share: int,
    fuse: int = 1,
    report_every: float = REPORT_EVERY_SECONDS,
) -> None:
    base = worker_id or f"{socket.gethostname()}-{os.getpid()}"
    own_id = f"{base}-{index}"
    sys.exit(
        _agent_main(server, token, sweep_id, own_id, data_dir, once, share=share, fuse=fuse, report_every=report_every)
    )


def _agent_main(
    server: str,
    token: str | None,
    sweep_id: int | None,
    worker_id: str,
    data_dir: str | None,
    once: bool,
    *,
    share: int,
    fuse: int = 1,
    report_every: float = REPORT_EVERY_SECONDS,
) -> int:
    # Imported here so that `--help` does not pay for importing torch.
    from hypersweep.trainer import set_threads
    from hypersweep.worker.agent import Agent

    _configure_logging(worker_id)
    threads = set_threads(share)
    with ServiceClient.connect(server, token=token) as client:
        agent = Agent(
            client,
            worker_id=worker_id,
            sweep_id=sweep_id,
            data_dir=data_dir,
            once=once,
            fuse=fuse,
            report_every=report_every,
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
        logger.info("worker %s serving %s (torch threads: %d)", worker_id, server, threads)
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
    logger.info("worker %s done after %d trial(s)", worker_id, ran)
    return 0


def _configure_logging(worker_id: str) -> None:
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {worker_id} %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # One line per HTTP request drowns out the trials' own progress.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def worker_command(
    sweep: Annotated[
        int | None,
        typer.Option(
            "--sweep",
            metavar="ID",
            help="Only run trials of sweep ID, and exit once it has finished or was "
            "cancelled. Without it, serve every sweep and keep waiting for new work.",
        ),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            metavar="N",
            min=1,
            help="Trials to run side by side, each in its own process with an equal share of this machine's CPU cores.",
        ),
    ] = 1,
    server: Annotated[
        str,
        typer.Option("--server", envvar="HYPERSWEEP_SERVER", help="URL of the hypersweep server."),
    ] = DEFAULT_SERVER,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="HYPERSWEEP_TOKEN",
            help="API token, when the server was started with HYPERSWEEP_TOKEN.",
            show_default=False,
        ),
    ] = None,
    worker_id: Annotated[
        str | None,
        typer.Option(
            "--worker-id",
            help="Name shown on the trials this worker runs. Default: <hostname>-<pid>-<index>.",
            show_default=False,
        ),
    ] = None,
    data_dir: Annotated[
        str | None,
        typer.Option(
            "--data-dir",
            envvar="HYPERSWEEP_DATA_DIR",
            help="Folder that 'npz:<path>' datasets are read from.",
        ),
    ] = None,
    once: Annotated[
        bool,
        typer.Option("--once", help="Run at most one trial (one claim with --fuse) per process, then exit."),
    ] = False,
    fuse: Annotated[
        int,
        typer.Option(
            "--fuse",
            metavar="K",
            min=1,
            max=MAX_CLAIM,
            help="Claim up to K trials at once and train those with the same architecture and fixed "
            "settings as one batched model (each with its own lr, reg, momentum and dropout, its own "
            "curve and early stop). 1 trains every trial on its own.",
        ),
    ] = 1,
    report_every: Annotated[
        float,
        typer.Option(
            "--report-every",
            metavar="SECONDS",
            min=0.0,
            envvar="HYPERSWEEP_REPORT_EVERY",
            help="Send each trial's new per-epoch metrics at most this often, all epochs since the last "
            "send in one request (the last ones go with the finish). 0 sends every epoch as it ends.",
        ),
    ] = REPORT_EVERY_SECONDS,
) -> None:
    """Pull trials from a hypersweep server, train them, and report back.

    Each trial streams its per-epoch metrics to the server while it trains,
    and stops early when its loss explodes or the server says so (its sweep
    was cancelled). Ctrl-C or SIGTERM stops after the current epoch and
    hands the trial back to the server, which queues it again at once.

    Example: hypersweep worker --sweep 3 --concurrency 2
    (or --fuse 16 to train up to 16 alike trials as one model)
    """
    code = run_worker(
        server=server,
        token=token,
        sweep_id=sweep,
        concurrency=concurrency,
        worker_id=worker_id,
        data_dir=data_dir,
        once=once,
        fuse=fuse,
        report_every=report_every,
    )
    raise typer.Exit(code)
