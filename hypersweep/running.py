"""``hypersweep.run``: a whole sweep of a Python function, from Python, in one call.

It starts ``hypersweep serve`` on a local SQLite file (unless given a ``server``), submits
the sweep with a ``program`` of the function's name (unless the document names one),
starts ``workers`` worker processes that call the function for each trial, shows the
progress, and returns the sweep once it has ended. The server and the workers are real
processes, as ``hypersweep serve`` and ``hypersweep worker --program NAME --function``
would be: what runs here runs the same way on a cluster.

The worker processes are started with multiprocessing's ``spawn``: the function must be
importable (defined at the top level of a module), and a script that calls :func:`run`
keeps the call under ``if __name__ == "__main__":``, as with ``multiprocessing``.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from hypersweep.client import Client
from hypersweep.documents import load_document
from hypersweep.program import Trial
from hypersweep.worker.wire import Sweep

__all__ = ["run"]

#: How long the server may take to answer its health check.
STARTUP_SECONDS = 60.0


def run(
    sweep: Mapping[str, Any] | str | os.PathLike[str],
    train: Callable[[Trial], Any],
    *,
    workers: int = 1,
    server: str | None = None,
    token: str | None = None,
    database: str | None = None,
    timeout: float | None = None,
    max_failures: int = 5,
    progress: bool = True,
) -> Sweep:
    """Run the sweep ``sweep`` (a document, or the path of a YAML or JSON file) with
    ``train(trial)`` for each trial in ``workers`` processes, and return the ended sweep.

    ``server`` is a running server's URL (with ``token``); without it a server is started
    for the call on ``database`` (default: the SQLite file ``hypersweep.db`` in the working
    directory, as ``hypersweep serve`` uses) and stopped at the end. ``timeout`` and
    ``max_failures`` are the worker's ``--timeout`` and ``--max-failures``. The sweep keeps
    running on the server when the workers give up (its trials kept failing) or on Ctrl-C,
    which stops the workers (their trials are given back) and the server, then re-raises.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    doc = dict(load_document(sweep) if isinstance(sweep, str | os.PathLike) else sweep)
    program = doc.setdefault("program", program_name(train))
    with _Server(server, database) as url, Client(url, token=token) as client:
        submitted = client.submit(doc)
        context = multiprocessing.get_context("spawn")
        slots = [
            context.Process(
                target=_slot,
                args=(url, token, submitted.id, program, train, index, workers, timeout, max_failures),
                name=f"hypersweep-worker-{index}",
            )
            for index in range(workers)
        ]
        for slot in slots:
            slot.start()
        try:
            return _follow(client, submitted.id, slots, progress=progress)
        finally:
            # Also on Ctrl-C: the workers give their trials back before the server stops.
            _stop(slots)


def program_name(function: Callable[..., Any]) -> str:
    """A program name for ``function``: its module and name, as a program name may be."""
    module = getattr(function, "__module__", None) or "function"
    if module in ("__main__", "__mp_main__"):
        module = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "main"
    raw = f"{module}.{getattr(function, '__qualname__', 'train')}".lower()
    name = re.sub(r"[^a-z0-9._-]+", "-", raw).lstrip("._-")
    return (name or "function")[:100]


def _follow(client: Client, sweep_id: int, slots: list[Any], *, progress: bool) -> Sweep:
    """Poll the sweep until it ends or every worker has exited; the sweep as it is then."""
    from hypersweep.progress import SweepProgress

    def poll(update: Callable[[Sweep], None]) -> Sweep:
        while True:
            sweep = client.get_sweep(sweep_id)
            update(sweep)
            if not sweep.running or not any(slot.is_alive() for slot in slots):
                return sweep
            time.sleep(0.5)

    if not progress:
        return poll(lambda sweep: None)
    with SweepProgress() as bars:
        return poll(bars.update)


def _stop(slots: list[Any]) -> None:
    for slot in slots:
        if slot.is_alive() and slot.pid is not None:
            os.kill(slot.pid, signal.SIGTERM)
    for slot in slots:
        slot.join(timeout=60)
        if slot.is_alive():
            slot.kill()
            slot.join()


def _slot(
    url: str,
    token: str | None,
    sweep_id: int,
    program: str,
    train: Callable[[Trial], Any],
    index: int,
    share: int,
    timeout: float | None,
    max_failures: int,
) -> None:
    """One worker process: run the sweep's trials with ``train`` until it is over."""
    import logging

    from hypersweep.worker.agent import Agent
    from hypersweep.worker.client import ServiceClient, ServiceError
    from hypersweep.worker.runners.function import FunctionRunner

    worker_id = f"{socket.gethostname()}-{os.getpid()}-{index}"
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s {worker_id} %(levelname)s %(message)s")
    if share > 1:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // share)))
    with ServiceClient.connect(url, token=token) as client:
        agent = Agent(
            client,
            worker_id=worker_id,
            sweep_id=sweep_id,
            runner=FunctionRunner(train),
            program=program,
            timeout=timeout,
            max_failures=max_failures,
        )
        signal.signal(signal.SIGTERM, lambda signum, frame: agent.request_stop())
        signal.signal(signal.SIGINT, lambda signum, frame: agent.request_stop())
        try:
            agent.run()
        except ServiceError as exc:
            logging.getLogger("hypersweep").error("%s", exc)
            sys.exit(1)
    if agent.gave_up is not None:
        logging.getLogger("hypersweep").error("worker %s gave up: %s", worker_id, agent.gave_up)
        sys.exit(1)


class _Server:
    """The URL of ``url``, or of a ``hypersweep serve`` started on ``database`` and
    stopped on exit."""

    def __init__(self, url: str | None, database: str | None) -> None:
        self.url = url
        self.database = database
        self.process: subprocess.Popen[bytes] | None = None
        self.log: Any = None

    def __enter__(self) -> str:
        if self.url is not None:
            return self.url
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = dict(os.environ)
        env.pop("HYPERSWEEP_TOKEN", None)
        if self.database is not None:
            env["HYPERSWEEP_DATABASE_URL"] = self.database
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hypersweep", "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            # Out of the terminal's process group: Ctrl-C reaches the workers, which give
            # their trials back to this server, and the server stops only after them.
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.process.returncode}: {self._log_tail()}")
            try:
                httpx.get(f"{url}/healthz", timeout=2).raise_for_status()
                return url
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start in {STARTUP_SECONDS:g} s") from None
                time.sleep(0.1)

    def _log_tail(self) -> str:
        self.log.seek(0)
        return bytes(self.log.read()[-2000:]).decode(errors="replace").strip()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log is not None:
            self.log.close()
