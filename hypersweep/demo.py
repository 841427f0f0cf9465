"""``hypersweep demo``: a server on a SQLite file, two local workers, the bundled
coarse-to-fine sweep on digits, live progress, and a table of the best trials."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

from hypersweep.commands import connected, fail, follow, load_document
from hypersweep.worker.wire import Trial

__all__ = ["EXAMPLE", "demo"]

EXAMPLE = Path(__file__).parent / "examples" / "digits-coarse-to-fine.yaml"
DEMO_DB = "hypersweep-demo.db"

out = Console()


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise fail("no free port to listen on")


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # A session of its own: Ctrl-C reaches the demo only, which then stops its children
    # in order (workers give their trials back, then the server stops).
    with log.open("ab") as sink:
        return subprocess.Popen(args, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise fail(f"the server stopped while starting; see {log}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise fail(f"the server did not answer within {timeout:.0f} s; see {log}")


def demo(
    port: Annotated[int, typer.Option(help="Port for the demo server (another free one if taken).")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1, max=16)] = 2,
    file: Annotated[Path, typer.Option(help="The sweep document to run.")] = EXAMPLE,
    keep_serving: Annotated[bool, typer.Option(help="Keep the server up at the end, until Ctrl-C.")] = False,
) -> None:
    """Run a sweep end to end on this machine.

    Starts a server on a fresh SQLite file (hypersweep-demo.db in this directory, replaced
    on each run), starts local workers, submits the bundled coarse-to-fine sweep on digits
    (a wide 1-epoch random stage over lr, reg and dropout in log space, then a narrower,
    longer stage), shows live progress and ends with the best trials. Ctrl-C stops
    everything."""
    document = load_document(file)
    workdir = Path.cwd()
    for suffix in ("", "-wal", "-shm"):
        (workdir / f"{DEMO_DB}{suffix}").unlink(missing_ok=True)
    port = _free_port(port)
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HYPERSWEEP_DATABASE_URL": f"sqlite:///{workdir / DEMO_DB}", "HYPERSWEEP_SERVER": url}
    env.pop("HYPERSWEEP_TOKEN", None)
    log = workdir / "hypersweep-demo.log"
    log.write_text("")
    cli = [sys.executable, "-m", "hypersweep"]
    started = time.monotonic()
    server = _start([*cli, "serve", "--port", str(port), "--log-level", "warning"], env, log)
    worker: subprocess.Popen[bytes] | None = None
    try:
        out.print(f"server on {url} (database {DEMO_DB}, log {log.name})")
        _wait_healthy(url, server, log)
        with connected(url, "") as client:
            sweep = client.submit(document)
            out.print(f"sweep {sweep.id}: {sweep.name}, stages {[s.trials for s in sweep.stages]}")
            worker = _start([*cli, "worker", "--sweep", str(sweep.id), "--concurrency", str(workers)], env, log)
            out.print(f"{workers} workers training; Ctrl-C stops everything")
            sweep = follow(client, sweep.id, interval=0.5, console=out)
            best = client.trials(sweep, sort="-metric", status="completed", limit=5)
        _print_best(best, sweep.spec["space"])
        for warning in sweep.warnings:
            out.print(f"[yellow]warning:[/] {warning}")
        out.print(f"sweep {sweep.status} in {time.monotonic() - started:.0f} s")
        if keep_serving:
            out.print(f"dashboard: {url}/#/sweeps/{sweep.id}  (Ctrl-C to stop)")
            server.wait()
        else:
            out.print(
                f"dashboard: {url}/#/sweeps/{sweep.id} while the server runs: "
                f"HYPERSWEEP_DATABASE_URL=sqlite:///{DEMO_DB} hypersweep serve --port {port}"
            )
    except KeyboardInterrupt:
        out.print("stopping")
        raise typer.Exit(130) from None
    finally:
        if worker is not None:
            _stop(worker)
        _stop(server)


def _print_best(trials: list[Trial], space: dict[str, object]) -> None:
    names = list(space)
    table = Table("#", "stage", "val_accuracy", "test_accuracy", *names, title="best trials")
    for t in trials:
        table.add_row(
            str(t.number),
            str(t.stage),
            f"{t.value if t.value is not None else float('nan'):.4f}",
            f"{t.metrics.get('test_accuracy', float('nan')):.4f}",
            *(f"{t.params[n]:.3g}" for n in names),
        )
    out.print(table)
