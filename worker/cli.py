"""``hypersweep worker``: its options, checked before anything starts; the agents run in
``worker.slots``."""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

import typer

from hypersweep.limits import MAX_CLAIM, MAX_REPORT_EVERY, TOKEN_PATTERN
from hypersweep.worker.checkpoints import check_checkpoint_root
from hypersweep.worker.client import REPORT_EVERY_SECONDS
from hypersweep.worker.slots import Program, parse_devices, run_worker

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
            envvar=["HYPERSWEEP_WORKER_TOKEN", "HYPERSWEEP_TOKEN"],
            help="API token, when the server was started with HYPERSWEEP_TOKEN: its worker token "
            "(HYPERSWEEP_WORKER_TOKEN, read first) or its token.",
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
            "settings as one batched model (each with its own lr, reg, momentum, dropout and lr schedule, "
            "its own curve and early stop). 1 trains every trial on its own.",
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
    exit_when_idle: Annotated[
        float | None,
        typer.Option(
            "--exit-when-idle",
            metavar="SECONDS",
            min=0.0,
            help="Exit (code 0) once no trial has been handed out for SECONDS while waiting for one "
            "(each --concurrency slot on its own): for batch jobs such as Slurm arrays and KEDA "
            "ScaledJobs. Without it, wait for work until stopped.",
            show_default=False,
        ),
    ] = None,
    checkpoint_root: Annotated[
        str | None,
        typer.Option(
            "--checkpoint-root",
            metavar="DIR",
            envvar="HYPERSWEEP_CHECKPOINT_ROOT",
            help="Give each trial a checkpoint folder DIR/<sweep id>/<trial id> (a shared file system "
            "in a cluster), so that a trial that runs again after its worker was lost resumes from "
            "what its last attempt saved there.",
            show_default=False,
        ),
    ] = None,
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
        if checkpoint_root is not None:
            checkpoint_root = check_checkpoint_root(checkpoint_root)
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
        exit_when_idle=exit_when_idle,
        checkpoint_root=checkpoint_root,
    )
    raise typer.Exit(code)


@dataclass(frozen=True)
class WorkerSettings:
    """The worker's settings from its environment (or the flags that stand for them),
    checked: the server's URL, the token (``None``: none) and the report interval."""

    server: str
    token: str | None
    report_every: float


#: Where the worker's token comes from, as its error messages name it.
_TOKEN_SETTING = "HYPERSWEEP_WORKER_TOKEN or HYPERSWEEP_TOKEN (--token)"


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
        raise ValueError(f"{_TOKEN_SETTING}: the token is empty; set the server's token, or unset the variable")
    if token is not None and not re.fullmatch(TOKEN_PATTERN, token):
        raise ValueError(f"{_TOKEN_SETTING}: a token holds only visible ASCII characters, without spaces")
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
