"""Run a user's command per trial: ``hypersweep worker --program NAME -- python train.py --lr {lr} {args}``.

Each trial runs the command once, without a shell, in a process group of its own. In an
argument, ``{name}`` becomes the value of the trial's setting ``name`` (strings as they
are, everything else as JSON: ``0.001``, ``true``, ``[1, 2]``) and ``{{``/``}}`` stand
for literal braces; an argument that is exactly ``{args}`` becomes one ``--name=value``
per setting. A ``{name}`` the trial has no setting for fails that trial with a sentence
saying so. The environment carries the trial (``HYPERSWEEP_TRIAL_ID``,
``HYPERSWEEP_TRIAL_NUMBER``, ``HYPERSWEEP_STAGE``, ``HYPERSWEEP_PARAMS``, the settings as
one JSON object, ``HYPERSWEEP_PARAMS_FILE``, the same in a file, and, when the worker
has a checkpoint root, ``HYPERSWEEP_CHECKPOINT_DIR``, the trial's checkpoint folder) and
none of the worker's own ``HYPERSWEEP_*`` variables: the program holds no server credentials.

The program reports by printing lines ``@hypersweep {"step": 3, "train_loss": 0.41}``
(and ``@hypersweep {"final": {...}}`` for final metrics) to standard output; every other
line passes through to the worker's standard output, and standard error to the worker's,
the last 4 KiB of it kept for the trial's ``error``. When the trial must end (see
:class:`~.base.Watch`) the process group gets SIGTERM and, ``grace`` seconds later,
SIGKILL; once the command exits, whatever it left running in its group is killed too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from hypersweep.program import MARKER
from hypersweep.worker.runners.base import RunResult, TrialRun, Watch, final_metrics, stopped_result
from hypersweep.worker.runners.function import ProgramError

__all__ = ["CommandRunner", "PlaceholderError", "expand", "trial_environment"]

logger = logging.getLogger(__name__)

#: How much of the end of standard error a failed trial keeps as its ``error``.
STDERR_TAIL_BYTES = 4096
#: How often the waiting thread looks for a stop that needs no report, in seconds.
POLL_SECONDS = 0.2
#: The longest line read at once; a longer one passes through in pieces and is no report.
MAX_LINE_BYTES = 1 << 20

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")
_PREFIX = MARKER.encode() + b" "


class PlaceholderError(ValueError):
    """A ``{name}`` the trial has no setting for."""


def check_template(argv: Sequence[str]) -> None:
    """Refuse, at worker start, a command whose placeholders can never be filled."""
    if not argv:
        raise ProgramError("give the command to run after '--', e.g. -- python train.py {args}")
    for arg in argv:
        for match in _PLACEHOLDER.finditer(arg):
            name = match.group(1)
            if name is not None and not _NAME.match(name):
                raise ProgramError(
                    f"the command argument {arg!r} has a placeholder {{{name}}} that is not a setting's name "
                    "(lower case letters, digits and _); write {{ and }} for literal braces"
                )
            if name == "args" and arg != "{args}":
                raise ProgramError(f"{{args}} must be an argument of its own, not part of {arg!r}")
        if "{" in _PLACEHOLDER.sub("", arg) or "}" in _PLACEHOLDER.sub("", arg):
            raise ProgramError(
                f"the command argument {arg!r} has a lone {{ or }}; write {{{{ and }}}} for literal braces"
            )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def expand(argv: Sequence[str], settings: Mapping[str, Any]) -> list[str]:
    """The command line for one trial (see the module doc)."""
    out: list[str] = []
    for arg in argv:
        if arg == "{args}":
            out += [f"--{name}={_text(value)}" for name, value in settings.items()]
            continue

        def fill(match: re.Match[str]) -> str:
            whole, name = match.group(0), match.group(1)
            if whole in ("{{", "}}"):
                return whole[0]
            if name not in settings:
                known = ", ".join(sorted(settings)) or "none"
                raise PlaceholderError(
                    f"the command names {{{name}}}, but this trial has no setting {name!r} (its settings: {known})"
                )
            return _text(settings[name])

        out.append(_PLACEHOLDER.sub(fill, arg))
    return out


def trial_environment(trial: TrialRun, params_file: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The command's environment: the worker's, less its ``HYPERSWEEP_*`` variables, plus the trial's."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("HYPERSWEEP_")}
    env.update(
        HYPERSWEEP_TRIAL_ID=str(trial.id),
        HYPERSWEEP_TRIAL_NUMBER=str(trial.number),
        HYPERSWEEP_STAGE=str(trial.stage),
        HYPERSWEEP_PARAMS=json.dumps(dict(trial.settings)),
        HYPERSWEEP_PARAMS_FILE=str(params_file),
    )
    if "sanity" in trial.settings:  # a sanity check's run (see hypersweep.sanity)
        env["HYPERSWEEP_SANITY"] = str(trial.settings["sanity"])
    if trial.checkpoint_dir is not None:
        env["HYPERSWEEP_CHECKPOINT_DIR"] = str(trial.checkpoint_dir)
    return env


class CommandRunner:
    """Runs ``argv`` once per trial; see the module doc."""

    def __init__(self, argv: Sequence[str], *, grace: float = 10.0) -> None:
        check_template(argv)
        self.argv = list(argv)
        self.grace = grace

    def run(self, trial: TrialRun, watch: Watch) -> RunResult:
        try:
            args = expand(self.argv, trial.settings)
        except PlaceholderError as exc:
            return RunResult("failed", error=str(exc))
        with tempfile.TemporaryDirectory(prefix=f"hypersweep-trial-{trial.id}-") as folder:
            params_file = Path(folder) / "params.json"
            params_file.write_text(json.dumps(dict(trial.settings)), encoding="utf-8")
            try:
                process = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=trial_environment(trial, params_file),
                    start_new_session=True,  # its own process group, to end all of it
                )
            except OSError as exc:
                return RunResult("failed", error=f"cannot start {args[0]!r}: {exc.strerror or exc}")
            return self._follow(process, watch)

    def _follow(self, process: subprocess.Popen[bytes], watch: Watch) -> RunResult:
        assert process.stdout is not None and process.stderr is not None
        events: queue.Queue[tuple[str, Any]] = queue.Queue()
        tail = _Tail(STDERR_TAIL_BYTES)
        readers = [
            threading.Thread(target=_read_stdout, args=(process.stdout, events, watch.label), daemon=True),
            threading.Thread(target=_copy_stderr, args=(process.stderr, tail), daemon=True),
        ]
        for reader in readers:
            reader.start()
        final: dict[str, Any] = {}
        ended = False
        while not ended:
            try:
                kind, body = events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if watch.check() is not None:
                    break
                continue
            if kind == "eof":
                ended = True
            elif kind == "final":
                final.update(body)
            elif watch.observe(body[0], body[1]) is not None:
                break
        # Standard output can close before the process ends: it is still watched until then.
        while ended and process.poll() is None:
            if watch.check() is not None:
                ended = False
                break
            try:
                process.wait(timeout=POLL_SECONDS)
            except subprocess.TimeoutExpired:
                continue
        if not ended:
            _end_group(process, self.grace)
        code = process.wait()
        _kill_group(process)  # what it left running in its group
        for reader in readers:
            reader.join(timeout=5)
        metrics = final_metrics(watch.latest, final, label=watch.label)
        if watch.stop is not None:
            return stopped_result(watch, metrics)
        if code != 0:
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
            text = tail.text()
            error = f"the command {how}" + (f"; its standard error ends:\n{text}" if text else "")
            return RunResult("failed", metrics, error=error)
        return RunResult("completed", metrics)


def _end_group(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to the command's process group, SIGKILL ``grace`` seconds later if it still runs."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _kill_group(process)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _read_stdout(stream: IO[bytes], events: queue.Queue[tuple[str, Any]], label: str) -> None:
    """Report lines to ``events``; every other line to the worker's standard output."""
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
    try:
        while line := stream.readline(MAX_LINE_BYTES):
            if line.startswith(_PREFIX):
                event = _parse(line[len(_PREFIX) :], label)
                if event is not None:
                    events.put(event)
            elif out is not None:
                out.write(line)
                out.flush()
    except (OSError, ValueError):
        pass
    finally:
        events.put(("eof", None))


def _parse(body: bytes, label: str) -> tuple[str, Any] | None:
    """One report line's JSON as an event, or ``None`` (with a warning) when it is not one."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        logger.warning("%s: a report line that is not JSON left out: %.80r", label, body)
        return None
    if not isinstance(data, dict):
        logger.warning("%s: a report line that is not a JSON object left out: %.80r", label, body)
        return None
    if "final" in data:
        if not isinstance(data["final"], dict):
            logger.warning("%s: a final line whose 'final' is not an object left out: %.80r", label, body)
            return None
        return "final", data["final"]
    if "step" not in data:
        logger.warning("%s: a report line without a step left out: %.80r", label, body)
        return None
    step = data.pop("step")
    return "report", (step, data)


class _Tail:
    """The last ``size`` bytes written, and a thread-safe way to read them."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data = bytearray()
        self._lock = threading.Lock()

    def write(self, chunk: bytes) -> None:
        with self._lock:
            self._data += chunk
            del self._data[: -self.size]

    def text(self) -> str:
        with self._lock:
            return self._data.decode("utf-8", errors="replace").strip()


def _copy_stderr(stream: IO[bytes], tail: _Tail) -> None:
    err = sys.stderr.buffer if hasattr(sys.stderr, "buffer") else None
    try:
        while chunk := stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536):
            tail.write(chunk)
            if err is not None:
                err.write(chunk)
                err.flush()
    except (OSError, ValueError):
        pass
