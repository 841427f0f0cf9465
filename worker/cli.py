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
import importlib.util
import logging
import math
import multiprocessing
import os
import re
import signal
import socket
import sys
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from hypersweep.limits import MAX_CLAIM, MAX_REPORT_EVERY, TOKEN_PATTERN
from hypersweep.worker.client import REPORT_EVERY_SECONDS, ServiceClient, ServiceError

if TYPE_CHECKING:
    from hypersweep.worker.runners.base import Runner

__all__ = [
    "DEFAULT_SERVER",
    "WORKER_PACKAGES",
    "WorkerSettings",
    "check_settings",
    "missing_worker_packages",
    "run_worker",
    "worker_command",
]

DEFAULT_SERVER = "http://127.0.0.1:8000"

logger = logging.getLogger("worker")

#: What the built-in trainer imports that a base install (server and client) leaves out:
#: module name, and the name a person knows it by.
WORKER_PACKAGES = (("torch", "PyTorch"), ("sklearn", "scikit-learn"))


def missing_worker_packages() -> list[str]:
    """The packages of the ``worker`` extra that cannot be imported here, found without
    importing them (importing PyTorch takes seconds)."""
    missing = []
    for module, name in WORKER_PACKAGES:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


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
    ``cuda:0`` here and in every program this process starts), or no GPU for ``cpu``."""
    if device is None:
        return None
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return "cpu"
    os.environ["CUDA_VISIBLE_DEVICES"] = device.removeprefix("cuda:")
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
) -> int:
    """Run ``concurrency`` agents until their work is done or they are told to stop.
    Each claims up to ``fuse`` trials at once and trains those it can as one fused model,
    and sends each trial's new curve points at most every ``report_every`` seconds.
    With ``program``, each runs that program's trials instead. With ``devices``, agent
    ``i`` gets ``devices[i % len(devices)]`` alone.

    Returns the exit code: 0 when every agent stopped cleanly (nothing left in the sweep,
    ``once`` satisfied, or SIGTERM), 1 when one could not reach the server or was refused
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
    if concurrency == 1:
        own_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-0"
        device = _take_device(devices[0] if devices else None)
        return _agent_main(
            server,
            token,
            sweep_id,
            own_id,
            data_dir,
            once,
            share=1,
            fuse=fuse,
            report_every=report_every,
            program=program,
            device=device,
        )

    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(
            target=_child_main,
            args=(
                server,
                token,
                sweep_id,
                worker_id,
                index,
                data_dir,
                once,
                concurrency,
                fuse,
                report_every,
                program,
                devices[index % len(devices)] if devices else None,
            ),
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
    program: Program | None = None,
    device: str | None = None,
) -> None:
    base = worker_id or f"{socket.gethostname()}-{os.getpid()}"
    own_id = f"{base}-{index}"
    device = _take_device(device)
    sys.exit(
        _agent_main(
            server,
            token,
            sweep_id,
            own_id,
            data_dir,
            once,
            share=share,
            fuse=fuse,
            report_every=report_every,
            program=program,
            device=device,
        )
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
    program: Program | None = None,
    device: str | None = None,
) -> int:
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
    with ServiceClient.connect(server, token=token) as client:
        agent = Agent(
            client,
            worker_id=worker_id,
            sweep_id=sweep_id,
            data_dir=data_dir,
            device=device,
            once=once,
            fuse=fuse,
            report_every=report_every,
            runner=runner,
            program=program.name if program else None,
            timeout=program.timeout if program else None,
            max_failures=program.max_failures if program else None,
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
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = max(1, (cores or 1) // max(1, share))
    if share > 1:
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
        str,
        typer.Option(
            "--report-every",
            metavar="SECONDS",
            envvar="HYPERSWEEP_REPORT_EVERY",
            help="Send each trial's new per-epoch metrics at most this often, all epochs since the last "
            f"send in one request (the last ones go with the finish). 0 sends every epoch as it ends; "
            f"at most {MAX_REPORT_EVERY:g}.",
        ),
    ] = str(REPORT_EVERY_SECONDS),
    program: Annotated[
        str | None,
        typer.Option(
            "--program",
            metavar="NAME",
            help="Run your own training code for sweeps whose 'program' is NAME, given as --function "
            "or as a command after '--'. Without it, the worker runs the built-in trainer.",
            show_default=False,
        ),
    ] = None,
    function: Annotated[
        str | None,
        typer.Option(
            "--function",
            metavar="MODULE:CALLABLE",
            help="With --program: call CALLABLE(trial) for each trial (imported from the working "
            "directory or the installed environment).",
            show_default=False,
        ),
    ] = None,
    devices: Annotated[
        str | None,
        typer.Option(
            "--devices",
            metavar="LIST",
            help="Give each of the --concurrency slots one device, in turn: cuda:0,cuda:1 (or 0,1), cpu, "
            "or all (every GPU); through CUDA_VISIBLE_DEVICES and trial.device.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            min=0.001,
            help="With --program: fail a trial that runs longer than this.",
            show_default=False,
        ),
    ] = None,
    max_failures: Annotated[
        int,
        typer.Option(
            "--max-failures",
            metavar="N",
            min=1,
            help="With --program: after N failed trials in a row, stop claiming, give back what is held, "
            "and exit 1 naming the last error.",
        ),
    ] = 5,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            metavar="SECONDS",
            min=0.0,
            help="With --program: how long a command told to end has between SIGTERM and SIGKILL.",
        ),
    ] = 10.0,
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[-- COMMAND ARG...]",
            help="With --program: the command to run per trial, without a shell; {name} in an argument "
            "is that setting's value, and an argument {args} becomes one --name=value per setting.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Pull trials from a hypersweep server, train them, and report back.

    Each trial streams its per-epoch metrics to the server while it trains,
    and stops early when its loss explodes or the server says so (its sweep
    was cancelled). Ctrl-C or SIGTERM stops after the current epoch and
    hands the trial back to the server, which queues it again at once.

    Example: hypersweep worker --sweep 3 --concurrency 2
    (or --fuse 16 to train up to 16 alike trials as one model).
    Your own code: hypersweep worker --program NAME --function train:train,
    or hypersweep worker --program NAME -- python train.py {args}
    """
    try:
        settings = check_settings(server=server, token=token, report_every=report_every)
        chosen = _program(program, function, command or [], timeout, max_failures, grace, fuse)
        device_list = parse_devices(devices)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    missing = [] if chosen is not None else missing_worker_packages()
    if missing:
        typer.echo(
            f"error: a worker needs {' and '.join(missing)}, which this installation lacks; "
            "install the worker extra: pip install 'hypersweep[worker]'",
            err=True,
        )
        raise typer.Exit(1)
    code = run_worker(
        server=settings.server,
        token=settings.token,
        sweep_id=sweep,
        concurrency=concurrency,
        worker_id=worker_id,
        data_dir=data_dir,
        once=once,
        fuse=fuse,
        report_every=settings.report_every,
        program=chosen,
        devices=device_list,
    )
    raise typer.Exit(code)


@dataclass(frozen=True)
class WorkerSettings:
    """The worker's settings from its environment (or the flags that stand for them),
    checked: the server's URL, the token (``None``: none) and the report interval."""

    server: str
    token: str | None
    report_every: float


def check_settings(*, server: str, token: str | None, report_every: str) -> WorkerSettings:
    """Check the settings a worker reads from ``HYPERSWEEP_*`` variables (or their flags);
    ``ValueError`` with one line naming the variable for a value outside its range."""
    url = urlsplit(server)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"HYPERSWEEP_SERVER (--server): {server!r} is not an http:// or https:// URL")
    try:
        url.port  # noqa: B018 - reading it checks it
    except ValueError:
        raise ValueError(f"HYPERSWEEP_SERVER (--server): {server!r} has no valid port") from None
    if token is not None and not token:
        raise ValueError(
            "HYPERSWEEP_TOKEN (--token): the token is empty; set the server's token, or unset the variable"
        )
    if token is not None and not re.fullmatch(TOKEN_PATTERN, token):
        raise ValueError("HYPERSWEEP_TOKEN (--token): a token holds only visible ASCII characters, without spaces")
    try:
        every = float(report_every)
    except ValueError:
        every = math.nan
    if not 0 <= every <= MAX_REPORT_EVERY:
        raise ValueError(
            f"HYPERSWEEP_REPORT_EVERY (--report-every): {report_every!r} is not a number of seconds "
            f"from 0 to {MAX_REPORT_EVERY:g}"
        )
    return WorkerSettings(server, token, every)


def _program(
    name: str | None,
    function: str | None,
    command: list[str],
    timeout: float | None,
    max_failures: int,
    grace: float,
    fuse: int,
) -> Program | None:
    """The program the options describe, checked so that the worker refuses at start what
    could never run (``ValueError`` with a sentence); ``None`` for the built-in trainer."""
    from hypersweep.worker.runners.command import check_template
    from hypersweep.worker.runners.function import ProgramError, load_function

    if name is None:
        if function is not None or command:
            raise ValueError("--function and a command need --program NAME: the program the sweep names")
        return None
    if not _PROGRAM_NAME.match(name):
        raise ValueError(f"--program {name!r}: a program name is [a-z0-9][a-z0-9._-]*, at most 100 characters")
    if (function is None) == (not command):
        raise ValueError("--program needs exactly one of --function MODULE:CALLABLE or '-- COMMAND ARG...'")
    if fuse != 1:
        raise ValueError("--fuse is for the built-in trainer; a program's trials run one by one")
    try:
        if function is not None:
            load_function(function)  # refused now, not at the first trial
        else:
            check_template(command)
    except ProgramError as exc:
        raise ValueError(str(exc)) from None
    return Program(name, function, tuple(command), timeout, max_failures, grace)


_PROGRAM_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}\Z")
