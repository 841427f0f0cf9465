"""A command per trial: placeholders, the environment, report lines, stops and failures.

Each test runs a real program (a small Python script) as the runner's subprocess."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from hypersweep.worker.runners.base import Stop, StopCause, TrialRun, Watch
from hypersweep.worker.runners.command import CommandRunner, PlaceholderError, check_template, expand, trial_environment
from hypersweep.worker.runners.function import ProgramError

SETTINGS = {"lr": 0.001, "name": "two words 'and' \"quotes\"", "epochs": 3, "batchnorm": False}


def trial(settings: dict[str, object] | None = None) -> TrialRun:
    return TrialRun(id=11, number=4, stage=1, params={"lr": 0.001}, settings=settings or SETTINGS)


def script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "prog.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def alive(pid: int) -> bool:
    """Whether a process still runs (a zombie waiting to be reaped does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def watch(**kwargs: object) -> tuple[Watch, list[tuple[int, dict[str, float]]]]:
    sent: list[tuple[int, dict[str, float]]] = []
    return Watch(send=lambda step, metrics: sent.append((step, metrics)), **kwargs), sent  # type: ignore[arg-type]


def test_placeholders_fill_from_the_settings_and_args_expands_to_one_option_each() -> None:
    assert expand(["--lr", "{lr}", "--tag={name}", "{args}", "{{literal}}"], SETTINGS) == [
        "--lr",
        "0.001",
        f"--tag={SETTINGS['name']}",
        "--lr=0.001",
        f"--name={SETTINGS['name']}",
        "--epochs=3",
        "--batchnorm=false",
        "{literal}",
    ]


def test_a_placeholder_the_trial_has_no_setting_for_is_a_sentence_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(PlaceholderError, match=r"names \{momentum\}, but this trial has no setting 'momentum'"):
        expand(["{momentum}"], SETTINGS)
    result = CommandRunner([sys.executable, "-c", "pass", "{momentum}"]).run(trial(), watch()[0])
    assert result.status == "failed"
    assert result.error is not None and "no setting 'momentum'" in result.error


@pytest.mark.parametrize(
    "argv", [[], ["python", "{not a name}"], ["python", "--x={args}"], ["python", "{lr"], ["python", "lr}"]]
)
def test_a_command_that_can_never_run_is_refused_at_worker_start(argv: list[str]) -> None:
    with pytest.raises(ProgramError):
        check_template(argv)


def test_values_with_spaces_and_quotes_reach_the_program_intact_without_a_shell(tmp_path: Path) -> None:
    out = tmp_path / "argv.json"
    argv = script(
        tmp_path,
        f"""
        import json, sys
        open({str(out)!r}, "w").write(json.dumps(sys.argv[1:]))
        print('@hypersweep {{"step": 1, "train_loss": 1.0}}')
        """,
    )
    w, sent = watch()
    result = CommandRunner([*argv, "{name}", "{args}"]).run(trial(), w)
    assert result.status == "completed", result.error
    assert json.loads(out.read_text()) == [
        SETTINGS["name"],
        "--lr=0.001",
        f"--name={SETTINGS['name']}",
        "--epochs=3",
        "--batchnorm=false",
    ]
    assert sent == [(1, {"train_loss": 1.0})]


def test_the_environment_carries_the_trial_and_no_credentials(tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    argv = script(
        tmp_path,
        f"""
        import json, os
        env = {{k: v for k, v in os.environ.items() if k.startswith("HYPERSWEEP")}}
        env["file"] = open(os.environ["HYPERSWEEP_PARAMS_FILE"]).read()
        open({str(out)!r}, "w").write(json.dumps(env))
        """,
    )
    os.environ["HYPERSWEEP_TOKEN"] = "secret"
    os.environ["HYPERSWEEP_DATABASE_URL"] = "postgresql://user:password@db/x"
    try:
        result = CommandRunner(argv).run(trial(), watch()[0])
    finally:
        del os.environ["HYPERSWEEP_TOKEN"], os.environ["HYPERSWEEP_DATABASE_URL"]
    assert result.status == "completed"
    env = json.loads(out.read_text())
    assert env.pop("HYPERSWEEP_PARAMS_FILE")
    assert json.loads(env.pop("file")) == SETTINGS
    assert json.loads(env.pop("HYPERSWEEP_PARAMS")) == SETTINGS
    assert env == {"HYPERSWEEP_TRIAL_ID": "11", "HYPERSWEEP_TRIAL_NUMBER": "4", "HYPERSWEEP_STAGE": "1"}


def test_report_lines_become_the_curve_and_final_metrics_other_output_is_left_alone(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = script(
        tmp_path,
        """
        from hypersweep import report, report_final
        print("epoch 1 of 2, plain output")
        report(1, train_loss=1.0, val_accuracy=0.5)
        print("@hypersweep {not json")
        print('@hypersweep {"step": 2, "train_loss": "low", "val_accuracy": 0.75}')
        print('@hypersweep {"step": 1, "train_loss": 0.1}')
        print('@hypersweep [1, 2]')
        report_final(test_accuracy=0.7)
        """,
    )
    w, sent = watch()
    result = CommandRunner(argv).run(trial(), w)
    assert result.status == "completed", result.error
    assert sent == [(1, {"train_loss": 1.0, "val_accuracy": 0.5}), (2, {"val_accuracy": 0.75})]
    assert result.metrics == {"train_loss": 1.0, "val_accuracy": 0.75, "test_accuracy": 0.7}
    out = capfd.readouterr().out
    assert "epoch 1 of 2, plain output" in out


def test_an_exploding_loss_ends_the_process_within_the_grace_period(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    argv = script(
        tmp_path,
        f"""
        import os, time, signal
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a program that ignores SIGTERM still ends
        from hypersweep import report
        report(0, train_loss=1.0)
        report(1, train_loss=3.5)
        while True:
            time.sleep(0.05)
        """,
    )
    w, sent = watch()
    started = time.monotonic()
    result = CommandRunner(argv, grace=1.0).run(trial(), w)
    assert result.status == "diverged"
    assert result.metrics["stop_reason"] == "diverged"
    assert [step for step, _ in sent] == [0, 1]
    assert time.monotonic() - started < 30
    assert not alive(int(pid_file.read_text()))


def test_a_stop_from_outside_ends_the_whole_process_group(tmp_path: Path) -> None:
    child_pid = tmp_path / "child"
    argv = script(
        tmp_path,
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(child_pid)!r}, "w").write(str(child.pid))
        print('@hypersweep {{"step": 1, "train_loss": 1.0}}', flush=True)
        time.sleep(600)
        """,
    )
    told: list[Stop | None] = [None]
    w, sent = watch(interrupted=lambda: told[0])

    def cancel_when_reported() -> None:
        while not sent:
            time.sleep(0.05)
        told[0] = Stop(StopCause.SERVER, "the sweep was cancelled")

    threading.Thread(target=cancel_when_reported, daemon=True).start()
    result = CommandRunner(argv, grace=2.0).run(trial(), w)
    assert result.status == "stopped" and result.stop == Stop(StopCause.SERVER, "the sweep was cancelled")
    deadline = time.monotonic() + 5
    while alive(int(child_pid.read_text())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(int(child_pid.read_text()))


def test_a_crash_fails_the_trial_with_the_tail_of_its_standard_error(tmp_path: Path) -> None:
    argv = script(
        tmp_path,
        """
        import sys
        sys.stderr.write("x" * 10000 + "\\n")
        raise RuntimeError("out of memory in layer 3")
        """,
    )
    result = CommandRunner(argv).run(trial(), watch()[0])
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.startswith("the command exited with code 1")
    assert "RuntimeError: out of memory in layer 3" in result.error
    assert len(result.error.encode()) < 4096 + 200


def test_a_hung_program_hits_the_time_limit(tmp_path: Path) -> None:
    argv = script(tmp_path, "import time; time.sleep(600)")
    result = CommandRunner(argv, grace=1.0).run(trial(), watch(timeout=1.0)[0])
    assert result.status == "failed"
    assert result.error == "timed out after 1 s"


def test_a_command_that_does_not_exist_fails_its_trial_with_a_sentence() -> None:
    result = CommandRunner(["/no/such/program", "{args}"]).run(trial(), watch()[0])
    assert result.status == "failed"
    assert result.error is not None and "cannot start '/no/such/program'" in result.error


def test_a_checkpoint_folder_reaches_the_command_and_the_workers_root_does_not(tmp_path: Path) -> None:
    base = {"PATH": "/bin", "HYPERSWEEP_CHECKPOINT_ROOT": str(tmp_path)}
    folder = tmp_path / "3" / "11"
    with_root = TrialRun(id=11, number=4, stage=1, params={}, settings=SETTINGS, checkpoint_dir=folder)
    env = trial_environment(with_root, tmp_path / "params.json", base)
    assert env["HYPERSWEEP_CHECKPOINT_DIR"] == str(folder)
    assert "HYPERSWEEP_CHECKPOINT_ROOT" not in env
    assert "HYPERSWEEP_CHECKPOINT_DIR" not in trial_environment(trial(), tmp_path / "params.json", base)
