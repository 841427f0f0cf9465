"""``hypersweep check FILE.yaml``: the sanity checks of a sweep document, run here.

The document is validated as a submit would validate it; then the checks
(``hypersweep.sanity``) run at the middle of its space with its trainer settings: with
the built-in trainer in this process, or with the program given as ``--function
MODULE:CALLABLE`` or ``-- COMMAND ARG...`` (as ``hypersweep worker`` takes it). Each check
prints what it measured, what was expected and whether it passed; the exit code is 1
when one failed, 2 when the checks could not run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hypersweep.sanity import CheckResult, middle_params, passed

__all__ = ["check", "print_results", "print_sanity", "settings_for"]

out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def settings_for(document: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """The validated document's check settings (a first-stage trial's, at the middle of
    the space), its space as JSON, and its program. Raises ``ValueError`` with the
    problems, one ``path: sentence`` each, for a document a submit would refuse."""
    from pydantic import ValidationError

    from hypersweep.service.claims import trial_settings
    from hypersweep.service.schemas import SweepSpec
    from hypersweep.service.search.space import dump_space
    from hypersweep.service.validation import SpecError, check_spec

    try:
        spec = SweepSpec.model_validate(document)
        check_spec(spec)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(map(str, e['loc'])) or 'document'}: {str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise ValueError("; ".join(problems)) from None
    except SpecError as exc:
        raise ValueError("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in exc.errors)) from None
    space = dump_space(spec.space)
    settings = trial_settings(spec.trainer, spec.stages[0].epochs, middle_params(space), builtin=spec.program is None)
    return settings, space, spec.program


def print_results(results: list[CheckResult], console: Console = out) -> None:
    """One row per check: what it measured, the expected value, pass or fail; then why."""
    table = Table("check", "measured", "expected", "result")
    for result in results:
        measured = "-" if result.measured is None else f"{result.measured:.4g}"
        verdict = "[green]pass[/]" if result.passed else "[bold red]FAIL[/]"
        table.add_row(result.name, measured, result.expected, verdict)
    console.print(table)
    for result in results:
        console.print(f"{result.name}: {result.detail}", highlight=False, soft_wrap=True)


def print_sanity(sanity: Mapping[str, Any], console: Console = out) -> None:
    """A sweep's stored sanity checks (``SweepOut.sanity``), as ``status`` shows them."""
    state = sanity.get("status", "pending")
    colour = {"passed": "green", "failed": "bold red"}.get(state, "yellow")
    mode = "warn" if sanity.get("mode") == "warn" else "true"
    console.print(f"sanity checks (sanity: {mode}): [{colour}]{state}[/]")
    results = [
        CheckResult(
            name=str(c.get("name")),
            measured=c.get("measured") if isinstance(c.get("measured"), int | float) else None,
            expected=str(c.get("expected", "")),
            expected_value=None,
            passed=bool(c.get("passed")),
            detail=str(c.get("detail", "")),
        )
        for c in sanity.get("checks") or []
        if isinstance(c, Mapping)
    ]
    if results:
        print_results(results, console)
    if sanity.get("error"):
        console.print(f"the checks could not run: {sanity['error']}", highlight=False, soft_wrap=True)


def check(
    file: Annotated[Path, typer.Argument(help="The sweep document, YAML or JSON.")],
    function: Annotated[
        str | None,
        typer.Option("--function", metavar="MODULE:CALLABLE", help="Run the checks with this function program."),
    ] = None,
    data_dir: Annotated[
        str | None, typer.Option("--data-dir", help="Where npz: data sets live (the built-in trainer).")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", metavar="SECONDS", min=0.0, help="Fail a check's run past this.")
    ] = None,
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[-- COMMAND ARG...]",
            help="Run the checks with this command program ({name} and {args} as 'hypersweep worker' fills them).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the sanity checks of a sweep before submitting it.

    The loss at initialisation against ln C, the loss with a large reg, and
    overfitting 20 examples: with the built-in trainer here, or with your program
    (--function MODULE:CALLABLE, or -- COMMAND ARG...), which honours the
    'sanity' setting (see the docs page "Babysitting a sweep").
    Exit code 1 when a check fails."""
    from hypersweep.documents import DocumentError, load_document

    try:
        document = load_document(file)
    except DocumentError as exc:
        raise _fail(str(exc)) from None
    try:
        settings, space, program = settings_for(document)
    except ValueError as exc:
        raise _fail(f"{file} is not a valid sweep: {exc}") from None
    runner: Any = None
    if program is not None:
        runner = _runner(program, function, command or [])
    elif function is not None or command:
        raise _fail("the sweep uses the built-in trainer; --function and a command are for a sweep with a program")
    from hypersweep.worker.sanity import run_checks

    try:
        results = run_checks(settings, space, runner=runner, data_dir=data_dir, timeout=timeout)
    except (RuntimeError, ValueError) as exc:
        raise _fail(f"the checks could not run: {exc}") from None
    print_results(results)
    if not passed(results):
        raise typer.Exit(1)


def _runner(program: str, function: str | None, command: list[str]) -> Any:
    from hypersweep.worker.runners.command import CommandRunner
    from hypersweep.worker.runners.function import FunctionRunner, ProgramError, load_function

    if (function is None) == (not command):
        raise _fail(
            f"the sweep runs program {program!r}: give exactly one of --function MODULE:CALLABLE or '-- COMMAND ARG...'"
        )
    try:
        if function is not None:
            return FunctionRunner(load_function(function))
        return CommandRunner(command)
    except ProgramError as exc:
        raise _fail(str(exc)) from None
