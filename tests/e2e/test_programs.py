"""Users' own programs end to end: a real server on each database, real
``hypersweep worker --program`` processes, and real user code as functions and commands."""

from __future__ import annotations

import math
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Processes, Server, serve, wait_until

pytestmark = pytest.mark.e2e

#: A user's training code: a function and the same as a command. The "loss" falls with the
#: epochs, faster the nearer lr is to 0.01; lr above 1 makes it explode from the second step.
USER_CODE = """
import json, math, os, sys, time
import hypersweep


def curve(lr, epoch):
    if lr > 1:
        return 10.0 ** epoch
    return 1.0 / (1 + epoch) + abs(math.log10(lr) + 2) / 10


def train(trial):
    lr = trial.params["lr"]
    for epoch in range(1, trial.settings["epochs"] + 1):
        if trial.settings.get("sleep"):
            time.sleep(trial.settings["sleep"])
        loss = curve(lr, epoch)
        trial.report(epoch, train_loss=loss, val_accuracy=1 - loss / 2)
    return {"test_accuracy": 1 - curve(lr, trial.settings["epochs"]) / 2, "stage_seen": trial.stage}


def device_probe(trial):
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    trial.report(1, val_accuracy=1.0, on_cpu=float(trial.device == "cpu"), gpus_hidden=float(visible == ""))


if __name__ == "__main__" and os.environ.get("DEVICE_DIR"):
    time.sleep(0.5)
    open(os.path.join(os.environ["DEVICE_DIR"], os.environ["HYPERSWEEP_TRIAL_ID"]), "w").write(
        os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
    )
    hypersweep.report(1, val_accuracy=1.0)
elif __name__ == "__main__":
    args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
    open(os.path.join(os.environ["PID_DIR"], str(os.getpid())), "w").close() if os.environ.get("PID_DIR") else None
    lr, epochs = float(args["lr"]), int(args["epochs"])
    for epoch in range(1, epochs + 1):
        time.sleep(float(args.get("sleep", 0)))
        loss = curve(lr, epoch)
        print(f"epoch {epoch}: plain output that is left alone")
        hypersweep.report(epoch, train_loss=loss, val_accuracy=1 - loss / 2)
    hypersweep.report_final(test_accuracy=1 - curve(lr, epochs) / 2)
"""


@pytest.fixture
def server(processes: Processes, database_url: str) -> Iterator[Server]:
    """A real ``hypersweep serve`` on this test's database (SQLite file or PostgreSQL), with
    the user's code in its working directory."""
    (processes.workdir / "user_code.py").write_text(USER_CODE)
    yield from serve(processes, database_url)


def sweep(name: str, lrs: list[float], *, epochs: int = 3, **trainer: Any) -> dict[str, Any]:
    return {
        "name": name,
        "program": "toy",
        "objective": {"metric": "val_accuracy", "mode": "max"},
        "space": {"lr": {"type": "categorical", "values": lrs}},
        "search": {"kind": "grid"},
        "stages": [{"epochs": epochs}],
        "trainer": trainer,
        "parallelism": 4,
    }


COMMAND = ["--", sys.executable, "user_code.py", "{args}"]


def run_worker(server: Server, sweep_id: int, *args: str, name: str = "worker", timeout: float = 120) -> int:
    proc = server.start_worker("--program", "toy", "--sweep", str(sweep_id), *args, name=name)
    return server.wait_for_exit(proc, timeout=timeout)


@pytest.mark.parametrize("form", ["function", "command"])
def test_a_program_sweep_runs_to_completion_with_two_slots(server: Server, form: str) -> None:
    client = server.client
    lrs = [0.001, 0.01, 0.1, 0.3]
    # Each epoch takes a moment, so that both slots get trials.
    created = client.submit_sweep(sweep(f"toy-{form}", lrs, sleep=0.3))
    how = ["--function", "user_code:train"] if form == "function" else COMMAND
    assert run_worker(server, created.id, "--concurrency", "2", *how) == 0, server.processes.logs()

    done = client.get_sweep(created.id)
    assert done.status == "completed"
    trials = [client.get_trial(t.id) for t in client.list_trials(created.id, limit=100)]
    assert sorted(t.params["lr"] for t in trials) == lrs
    for trial in trials:
        assert trial.status == "completed", trial.error
        assert [point.step for point in trial.curve or ()] == [1, 2, 3]
        lr = trial.params["lr"]
        expected = 1 - (1 / 4 + abs(math.log10(lr) + 2) / 10) / 2
        assert trial.value == pytest.approx(expected)
        assert trial.metrics["test_accuracy"] == pytest.approx(expected)
    assert done.best is not None and done.best.params["lr"] == 0.01
    workers = {trial.worker_id for trial in trials}
    assert len(workers) == 2, workers  # both slots ran trials
    if form == "command":
        assert "plain output that is left alone" in server.processes.logs()


@pytest.mark.parametrize("form", ["function", "command"])
def test_an_exploding_program_is_ended_at_the_report_that_crosses_three_times_its_first_loss(
    server: Server, form: str, tmp_path: Path
) -> None:
    client = server.client
    created = client.submit_sweep(sweep(f"boom-{form}", [5.0], epochs=50, sleep=0.05))
    pids = tmp_path / "pids"
    pids.mkdir()
    os.environ["PID_DIR"] = str(pids)
    try:
        how = (
            ["--function", "user_code:train"]
            if form == "function"
            else [*COMMAND[:3], "--lr={lr}", "--epochs={epochs}", "--sleep={sleep}"]
        )
        assert run_worker(server, created.id, "--grace", "2", *how) == 0, server.processes.logs()
    finally:
        del os.environ["PID_DIR"]
    [listed] = client.list_trials(created.id)
    trial = client.get_trial(listed.id)
    assert trial.status == "diverged"
    assert trial.metrics["stop_reason"] == "diverged"
    # The first report (10) is the initial loss; the second (100) crosses 3x: nothing after it.
    assert [point.step for point in trial.curve or ()] == [1, 2]
    for pid_file in pids.iterdir():
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid_file.name), 0)


def test_cancel_mid_trial_ends_the_users_process(server: Server, tmp_path: Path) -> None:
    client = server.client
    created = client.submit_sweep(sweep("cancel", [0.01], epochs=1000, sleep=0.2))
    pids = tmp_path / "pids"
    pids.mkdir()
    os.environ["PID_DIR"] = str(pids)
    try:
        worker = server.start_worker("--program", "toy", "--sweep", str(created.id), "--grace", "3", *COMMAND)
    finally:
        del os.environ["PID_DIR"]

    def reported() -> bool:
        trials = client.list_trials(created.id)
        return bool(trials) and bool(client.get_trial(trials[0].id).curve)

    wait_until(reported, what="the first report")
    [listed] = client.list_trials(created.id)
    [pid] = [int(p.name) for p in pids.iterdir()]
    client.cancel_sweep(created.id)
    assert server.wait_for_exit(worker, timeout=60) == 0, server.processes.logs()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    trial = client.get_trial(listed.id)
    assert trial.status == "cancelled"
    assert "the server said stop" in server.processes.logs()


def test_crashing_programs_fail_with_their_stderr_and_five_in_a_row_stop_the_worker(server: Server) -> None:
    client = server.client
    (server.processes.workdir / "crash.py").write_text(
        "import sys\nsys.stderr.write('loading data...\\n')\nraise SystemExit('CUDA error: out of memory')\n"
    )
    created = client.submit_sweep(sweep("crash", [0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008]))
    code = run_worker(server, created.id, "--", sys.executable, "crash.py")
    logs = server.processes.logs()
    assert code == 1, logs
    assert "5 trials failed in a row; the last one's error ends: CUDA error: out of memory" in logs
    trials = client.list_trials(created.id, limit=100)
    failed = [t for t in trials if t.status == "failed"]
    assert len(failed) == 5
    assert all(
        "CUDA error: out of memory" in (t.error or "") and "exited with code 1" in (t.error or "") for t in failed
    )
    # Nothing is left running or leased: the rest waits for a working program.
    assert {t.status for t in trials} <= {"failed", "queued"}


def test_a_hung_program_hits_the_timeout(server: Server) -> None:
    client = server.client
    (server.processes.workdir / "hang.py").write_text("import time\ntime.sleep(600)\n")
    created = client.submit_sweep(sweep("hang", [0.01]))
    assert run_worker(server, created.id, "--timeout", "2", "--grace", "1", "--", sys.executable, "hang.py") == 0
    [trial] = client.list_trials(created.id)
    assert trial.status == "failed"
    assert trial.error == "timed out after 2 s"


def test_placeholders_the_trial_cannot_fill_fail_the_trial_and_malformed_ones_stop_the_worker(server: Server) -> None:
    client = server.client
    created = client.submit_sweep(sweep("placeholders", [0.01]))
    code = run_worker(server, created.id, "--max-failures", "1", "--", sys.executable, "user_code.py", "--m={momentum}")
    assert code == 1
    [trial] = client.list_trials(created.id)
    assert trial.status == "failed"
    assert "names {momentum}, but this trial has no setting 'momentum'" in (trial.error or "")

    proc = server.start_worker("--program", "toy", "--", "python", "--lr={not a name}", name="malformed")
    assert server.wait_for_exit(proc, timeout=60) == 1
    log = server.processes.logs()
    assert "placeholder {not a name} that is not a setting's name" in log
    assert "Traceback" not in log


def test_a_builtin_worker_never_runs_a_programs_trials(server: Server) -> None:
    client = server.client
    created = client.submit_sweep(sweep("not-for-builtin", [0.01]))
    proc = server.start_worker("--once", name="builtin")
    assert server.wait_for_exit(proc, timeout=120) == 0, server.processes.logs()
    # Trials are made when claimed: the built-in worker's claim made none of this sweep's.
    assert client.list_trials(created.id) == []
    refused = server.start_worker("--sweep", str(created.id), name="builtin-refused")
    assert server.wait_for_exit(refused, timeout=120) == 1
    assert "runs program 'toy'; this worker runs the built-in trainer" in server.processes.logs()


def test_bad_report_lines_are_warned_about_and_the_trial_completes(server: Server) -> None:
    client = server.client
    (server.processes.workdir / "messy.py").write_text(
        textwrap.dedent(
            """
            print('@hypersweep {not json')
            print('@hypersweep {"step": 2, "val_accuracy": "high", "train_loss": 1.0}')
            print('@hypersweep {"step": 1, "val_accuracy": 0.5}')
            print('@hypersweep {"step": 3, "val_accuracy": 0.75}')
            """
        )
    )
    created = client.submit_sweep(sweep("messy", [0.01]))
    assert run_worker(server, created.id, "--", sys.executable, "messy.py") == 0, server.processes.logs()
    [listed] = client.list_trials(created.id)
    trial = client.get_trial(listed.id)
    assert trial.status == "completed"
    assert [(p.step, p.metrics) for p in trial.curve or ()] == [(2, {"train_loss": 1.0}), (3, {"val_accuracy": 0.75})]
    logs = server.processes.logs()
    assert "not JSON" in logs and "not a number" in logs and "goes back from step 2" in logs


def test_devices_give_each_slot_its_own(server: Server, tmp_path: Path) -> None:
    client = server.client
    seen = tmp_path / "devices"
    seen.mkdir()
    created = client.submit_sweep(sweep("devices", [0.001, 0.01, 0.1, 0.3, 0.5, 0.7]))
    os.environ["DEVICE_DIR"] = str(seen)
    try:
        code = run_worker(server, created.id, "--concurrency", "2", "--devices", "cuda:0,cuda:1", *COMMAND)
    finally:
        del os.environ["DEVICE_DIR"]
    assert code == 0, server.processes.logs()
    by_trial = {int(path.name): path.read_text() for path in seen.iterdir()}
    assert len(by_trial) == 6
    assert set(by_trial.values()) == {"0", "1"}  # one GPU per slot, never both, never none
    workers = {t.worker_id: set() for t in client.list_trials(created.id)}
    for trial in client.list_trials(created.id):
        workers[trial.worker_id].add(by_trial[trial.id])
    assert all(len(devices) == 1 for devices in workers.values()), workers

    created = client.submit_sweep(sweep("cpu", [0.01]))
    assert run_worker(server, created.id, "--devices", "cpu", "--function", "user_code:device_probe") == 0
    [trial] = client.list_trials(created.id)
    assert (trial.metrics["on_cpu"], trial.metrics["gpus_hidden"]) == (1.0, 1.0)


def test_devices_that_cannot_be_had_are_refused_at_start(server: Server) -> None:
    for devices in ("gpu0", "cuda:x", ""):
        proc = server.start_worker("--program", "toy", "--devices", devices, *COMMAND, name=f"devices-{devices}")
        assert server.wait_for_exit(proc, timeout=60) == 1
    assert "--devices takes cuda:N, N, cpu or all" in server.processes.logs()


def test_programs_that_never_report_the_objective_fail_and_count_as_failures(server: Server) -> None:
    client = server.client
    (server.processes.workdir / "no_objective.py").write_text(
        "import hypersweep\nhypersweep.report(1, train_loss=0.5)\n"
    )
    created = client.submit_sweep(sweep("no-objective", [0.001, 0.01, 0.1]))
    code = run_worker(server, created.id, "--max-failures", "2", "--", sys.executable, "no_objective.py")
    logs = server.processes.logs()
    assert code == 1, logs
    assert "2 trials failed in a row" in logs and "without reporting the sweep's objective" in logs
    failed = [t for t in client.list_trials(created.id) if t.status == "failed"]
    assert len(failed) == 2
    assert all("without reporting 'val_accuracy'" in (t.error or "") for t in failed)
