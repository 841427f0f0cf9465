"""Commands that talk to a running server: submit, status, trials, watch, export, cancel,
enqueue.

Every failure a person can cause or meet (a missing file, bad YAML, a refused document,
a server that is down or wants a token) ends in one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hypersweep.checking import print_sanity
from hypersweep.client import Client
from hypersweep.documents import DocumentError
from hypersweep.documents import load_document as read_document
from hypersweep.export import FORMATS, ExportFormat, export_trials
from hypersweep.progress import SweepProgress
from hypersweep.worker.client import RetryPolicy, ServiceError, ServiceUnavailable
from hypersweep.worker.wire import Sweep

__all__ = ["cancel", "enqueue", "export", "load_document", "parse_assignments", "status", "submit", "trials", "watch"]

out = Console()
err = Console(stderr=True)

ServerOpt = Annotated[str, typer.Option("--server", envvar="HYPERSWEEP_SERVER", help="The hypersweep server's URL.")]
TokenOpt = Annotated[
    str | None, typer.Option("--token", envvar="HYPERSWEEP_TOKEN", help="Bearer token, when the server has one.")
]
SweepArg = Annotated[int, typer.Argument(help="The sweep's id (as printed by 'hypersweep submit').", min=1)]

DEFAULT_SERVER = "http://127.0.0.1:8000"
# A person at a terminal wants a quick answer, not a minute of retries.
_CLI_RETRY = RetryPolicy(attempts=3, base_delay=0.2, max_delay=1.0, deadline=5.0)


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def connected(server: str, token: str | None) -> Iterator[Client]:
    """A client for ``server``; the service's refusals become one-line errors."""
    # Retries are the client's business; a person sees the outcome, not each attempt.
    logging.getLogger("hypersweep.worker.client").setLevel(logging.ERROR)
    client = Client(server, token, retry=_CLI_RETRY, timeout=10.0)
    try:
        yield client
    except ServiceUnavailable:
        raise fail(f"cannot reach the hypersweep server at {server} (is 'hypersweep serve' running?)") from None
    except ServiceError as exc:
        raise fail(_explain(exc, server, token)) from None
    finally:
        client.close()


def _explain(exc: ServiceError, server: str, token: str | None) -> str:
    if exc.status_code == 401:
        if token:
            return f"the server at {server} refused the token: it is wrong (check HYPERSWEEP_TOKEN or --token)"
        return f"the server at {server} needs a token: set HYPERSWEEP_TOKEN or pass --token"
    if exc.status_code == 422 and isinstance(exc.detail, list):
        problems = [f"{e.get('path') or '.'.join(map(str, e.get('loc', [])[1:]))}: {e.get('msg')}" for e in exc.detail]
        return "the server refused it: " + "; ".join(problems)
    if isinstance(exc.detail, str):
        return exc.detail
    return str(exc)


def load_document(path: Path) -> dict[str, Any]:
    """A sweep document from a YAML or JSON file (JSON is YAML); one line and exit 1 when
    the file cannot be read as one."""
    try:
        return read_document(path)
    except DocumentError as exc:
        raise fail(str(exc)) from None


def submit(
    file: Annotated[Path, typer.Argument(help="The sweep document, YAML or JSON.")],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Submit a sweep; prints its id and where to watch it."""
    document = load_document(file)
    with connected(server, token) as client:
        sweep = client.submit(document)
    out.print(
        f"submitted sweep [bold]{sweep.id}[/] ({sweep.name}): {len(sweep.stages)} stage(s), {sweep.total_trials} trials"
    )
    for warning in sweep.warnings:
        out.print(f"[yellow]warning:[/] {warning}")
    out.print(f"watch it:  hypersweep watch {sweep.id}")
    out.print(f"dashboard: {server.rstrip('/')}/#/sweeps/{sweep.id}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _full(value: Any) -> str:
    return "" if value is None else str(value)


#: The width tables are laid out in when the output is not a terminal: wide enough that no
#: value is cut to fit.
_UNCUT = 1_000_000


def _space_line(space: dict[str, Any] | None) -> str:
    if not space:
        return "(derived when it starts)"
    parts = []
    for name, axis in space.items():
        if axis["type"] == "categorical":
            parts.append(f"{name} in {axis['values']}")
        else:
            parts.append(
                f"{name} {_fmt(axis['low'])}..{_fmt(axis['high'])}{' log' if axis.get('scale') == 'log' else ''}"
            )
    return ", ".join(parts)


def _pruned_part(counts: dict[str, int]) -> str:
    """`` (3 pruned)`` when some of a stage's trials were pruned, else nothing."""
    pruned = counts.get("pruned", 0)
    return f" ({pruned} pruned)" if pruned else ""


def status(sweep_id: SweepArg, server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None) -> None:
    """Progress per stage, counts by status, the best trial and any warnings."""
    with connected(server, token) as client:
        sweep = client.get_sweep(sweep_id)
    objective = sweep.objective
    out.print(f"sweep [bold]{sweep.id}[/] {sweep.name}: [bold]{sweep.status}[/]")
    out.print(f"objective: {objective.mode} {objective.metric}")
    table = Table("stage", "status", "done", "best", "epochs", "search", "space")
    for stage in sweep.stages:
        table.add_row(
            str(stage.index),
            stage.status,
            f"{stage.finished_trials}/{stage.trials}" + _pruned_part(stage.counts),
            _fmt(stage.best_value),
            str(stage.epochs),
            stage.search["kind"],
            _space_line(stage.space),
        )
    out.print(table)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(sweep.counts.items())) or "no trials yet"
    out.print(f"trials: {counts}")
    best = sweep.best
    if best is not None:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items())
        test = best.metrics.get("test_accuracy")
        test_part = f", test_accuracy {_fmt(test)}" if test is not None else ""
        out.print(f"best: trial {best.number} {objective.metric} {_fmt(best.value)}{test_part} ({params})")
    if sweep.sanity is not None:
        print_sanity(sweep.sanity, out)
    for warning in sweep.warnings:
        out.print(f"[yellow]warning:[/] {warning}")


def trials(
    sweep_id: SweepArg,
    sort: Annotated[str, typer.Option(help="number, metric, started_at, ...; '-' first for descending.")] = "-metric",
    status_filter: Annotated[
        str | None, typer.Option("--status", help="Only trials with this status (completed, diverged, ...).")
    ] = None,
    stage: Annotated[int | None, typer.Option(help="Only this stage.", min=0)] = None,
    limit: Annotated[int, typer.Option(help="How many rows.", min=1, max=1000)] = 20,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """A table of a sweep's trials, best first by default. Piped or redirected, no value is
    shortened: numbers are printed in full and the table is as wide as they need."""
    with connected(server, token) as client:
        sweep = client.get_sweep(sweep_id)
        rows = client.trials(sweep, status=status_filter, stage=stage, sort=sort, limit=limit)
    names = list(sweep.spec["space"])
    metric = sweep.objective.metric
    terminal = out.is_terminal
    fmt = _fmt if terminal else _full
    # Columns a program's trials may not report are shown only when some trial has them.
    extra = [name for name in ("test_accuracy", "epochs_run") if any(name in t.metrics for t in rows)]
    table = Table("#", "stage", "status", metric, *extra, *names, "attempt")
    for t in rows:
        table.add_row(
            str(t.number),
            str(t.stage),
            t.status,
            fmt(t.value),
            *(fmt(t.metrics.get(name)) for name in extra),
            *(fmt(t.params.get(n)) for n in names),
            str(t.attempt),
        )
    (out if terminal else Console(width=_UNCUT)).print(table)


def watch(
    sweep_id: SweepArg,
    interval: Annotated[float, typer.Option(help="Seconds between polls.", min=0.1)] = 1.0,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Live progress: one bar per stage with that stage's best value so far, until the sweep ends."""
    with connected(server, token) as client:
        sweep = follow(client, sweep_id, interval=interval, console=out)
    out.print(f"sweep {sweep_id} {sweep.status}")


def follow(client: Client, sweep_id: int, *, interval: float, console: Console) -> Sweep:
    """Draw a progress bar per stage until the sweep is no longer running, or until Ctrl-C;
    returns the sweep as last seen."""
    sweep: Sweep | None = None
    with SweepProgress(console) as bars:
        try:
            for sweep in client.follow(sweep_id, interval=interval):
                bars.update(sweep)
        except KeyboardInterrupt:
            console.print("stopped watching; the sweep goes on")
    if sweep is None:  # interrupted before the first answer
        raise typer.Exit(130)
    return sweep


def export(
    sweep_id: SweepArg,
    format: Annotated[str, typer.Option("--format", help="csv, json, optuna or tensorboard.")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Where to write: an Optuna storage URL (sqlite:///study.db) for optuna, a directory for "
            "tensorboard, a file for csv or json.",
        ),
    ] = None,
    study: Annotated[str | None, typer.Option("--study", help="The Optuna study's name (default: NAME-ID).")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Every trial of a sweep: CSV with one column per parameter and metric, JSON, an
    Optuna study (--format optuna --to sqlite:///study.db) or TensorBoard runs
    (--format tensorboard --to DIR)."""
    if format not in EXPORT_FORMATS:
        raise fail(f"unknown format {format!r}; use {', '.join(EXPORT_FORMATS[:-1])} or {EXPORT_FORMATS[-1]}")
    if format == "optuna":
        _export_study(sweep_id, to, study, server, token)
        return
    if format == "tensorboard":
        _export_tensorboard(sweep_id, to, server, token)
        return
    chosen: ExportFormat = "json" if format == "json" else "csv"
    if to is not None:
        output = Path(to)
    if output is not None:
        _check_writable(output, f"trials.{chosen}")
    with connected(server, token) as client:
        rows = client.trials(sweep_id, sort="number")
    text = export_trials(rows, chosen)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror or exc}") from None
    err.print(f"wrote {len(rows)} trials to {output}")


#: What ``hypersweep export --format`` takes.
EXPORT_FORMATS = (*FORMATS, "optuna", "tensorboard")


def _export_study(sweep_id: int, storage: str | None, study: str | None, server: str, token: str | None) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from hypersweep.export_optuna import StudyExists

    if storage is None:
        raise fail("--format optuna needs --to STORAGE, an Optuna storage URL such as sqlite:///study.db")
    try:
        url = make_url(storage)
    except ArgumentError:
        raise fail(f"--to {storage!r} is not a database URL; use one such as sqlite:///study.db") from None
    if url.get_backend_name() == "sqlite" and url.database:
        _check_writable(Path(url.database), "study.db")
    with connected(server, token) as client:
        try:
            name, count = client.export_study(sweep_id, storage, study_name=study)
        except StudyExists as exc:
            raise fail(f"{exc} (--study NAME)") from None
    err.print(f"wrote {count} trials to the Optuna study {name!r} in {storage}")


def _export_tensorboard(sweep_id: int, directory: str | None, server: str, token: str | None) -> None:
    from hypersweep.export_tensorboard import MISSING_WRITER

    if directory is None:
        raise fail("--format tensorboard needs --to DIRECTORY, where one run per trial is written")
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise fail(f"{target} is a file; name a directory for the TensorBoard runs")
    if importlib.util.find_spec("tensorboardX") is None:
        raise fail(MISSING_WRITER)
    with connected(server, token) as client:
        try:
            count = client.export_tensorboard(sweep_id, target)
        except OSError as exc:
            raise fail(f"cannot write {target}: {exc.strerror or exc}") from None
    err.print(f"wrote {count} TensorBoard runs to {target} (tensorboard --logdir {target})")


def _check_writable(output: Path, example: str) -> None:
    """Refuse, before asking the server, a file that cannot be written where it is named."""
    if output.is_dir():
        raise fail(f"{output} is a directory; name a file in it, such as {output / example}")
    if not output.parent.is_dir():
        raise fail(f"cannot write {output}: there is no directory {output.parent}")


def cancel(sweep_id: SweepArg, server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None) -> None:
    """Cancel a sweep: no new trials, running ones are told to stop."""
    with connected(server, token) as client:
        sweep = client.cancel(sweep_id)
    out.print(f"sweep {sweep.id} {sweep.status}")


_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _cli_value(text: str) -> Any:
    """A value as typed: a whole number, a number, true or false, or else the text."""
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    if text in ("true", "false"):
        return text == "true"
    return text


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """``["lr=0.01", "optimizer=adam"]`` -> ``{"lr": 0.01, "optimizer": "adam"}``; values
    that look like numbers are numbers. ``ValueError`` with a sentence for a bad one."""
    params: dict[str, Any] = {}
    for item in assignments:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"{item!r} is not NAME=VALUE (for example lr=0.01)")
        if name in params:
            raise ValueError(f"{name} is given twice")
        params[name] = _cli_value(text.strip())
    return params


def enqueue(
    sweep_id: SweepArg,
    params: Annotated[
        list[str], typer.Argument(help="NAME=VALUE for every parameter of the space, e.g. lr=0.01 reg=1e-4.")
    ],
    stage: Annotated[
        int | None, typer.Option(help="The stage to run them in (default: the current one).", min=0)
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="A key for this call: running it again with the same key adds nothing.")
    ] = None,
    allow_duplicate: Annotated[
        bool, typer.Option("--allow-duplicate", help="Run them even if the stage has already tried these params.")
    ] = False,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
) -> None:
    """Queue a trial with params you chose, ahead of the strategy's (guess and check)."""
    try:
        chosen = parse_assignments(params)
    except ValueError as exc:
        raise fail(str(exc)) from None
    with connected(server, token) as client:
        made = client.enqueue(sweep_id, chosen, stage=stage, key=key, allow_duplicate=allow_duplicate)
    shown = ", ".join(f"{name}={_fmt(value)}" for name, value in chosen.items())
    for trial in made.trials:
        out.print(f"enqueued trial {trial.number} in stage {made.stage} of sweep {made.sweep_id}: {shown}")
    if made.waiting:
        out.print(f"enqueued for stage {made.stage} of sweep {made.sweep_id}, to run first when it starts: {shown}")
