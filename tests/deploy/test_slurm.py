"""``deploy/slurm/worker.sbatch``: its worker command line, as bash expands it on a compute
node, parses with the real ``hypersweep worker`` CLI; its ``#SBATCH`` lines ask for an
array of one-GPU tasks and a SIGTERM before the time limit; it refuses to start without
the server's address and the worker token. No Slurm runs here: sbatch itself is not
exercised."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.conftest import parse_worker_command, worker_has_option

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "slurm" / "worker.sbatch"
#: What Slurm sets in an array task's environment.
SLURM_ENV = {"SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "7"}


def directives() -> dict[str, str]:
    found = {}
    for line in SCRIPT.read_text().splitlines():
        if line.startswith("#SBATCH "):
            option, _, value = line.removeprefix("#SBATCH ").strip().partition("=")
            found[option] = value
    return found


def worker_argv(env: dict[str, str]) -> list[str]:
    """The argv of the script's ``exec hypersweep worker ...`` line, expanded by bash with
    ``env`` (continuation lines joined, variables and defaults substituted)."""
    text = re.sub(r"\\\n\s*", " ", SCRIPT.read_text())
    [line] = [line.strip() for line in text.splitlines() if line.strip().startswith("exec hypersweep worker")]
    words = line.removeprefix("exec ")
    result = subprocess.run(
        ["bash", "-c", f"set -eu; args=({words}); printf '%s\\0' \"${{args[@]}}\""],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split("\0")[:-1]


def test_the_script_asks_for_an_array_of_one_gpu_tasks_and_a_warning_signal() -> None:
    found = directives()
    assert re.fullmatch(r"\d+-\d+(%\d+)?", found["--array"])
    assert found["--gres"] == "gpu:1"
    assert found["--ntasks"] == "1"
    signal = re.fullmatch(r"B:TERM@(\d+)", found["--signal"])
    assert signal and int(signal[1]) > 0
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_the_worker_command_line_parses_with_the_real_cli() -> None:
    argv = worker_argv({**SLURM_ENV, "HYPERSWEEP_IDLE_SECONDS": "90"})
    assert argv[:2] == ["hypersweep", "worker"]
    assert "slurm-4242-7" in argv
    if not worker_has_option("--exit-when-idle"):
        pytest.skip("this build of `hypersweep worker` has no --exit-when-idle option yet")
    params = parse_worker_command(argv[2:])
    assert params["devices"] == "all"
    assert params["worker_id"] == "slurm-4242-7"
    assert float(params["exit_when_idle"]) == 90
    # Without HYPERSWEEP_IDLE_SECONDS the default applies.
    assert float(parse_worker_command(worker_argv(SLURM_ENV)[2:])["exit_when_idle"]) > 0


@pytest.mark.parametrize("missing", ["HYPERSWEEP_SERVER", "HYPERSWEEP_WORKER_TOKEN"])
def test_the_script_refuses_to_start_without_the_server_or_the_token(missing: str, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", **SLURM_ENV, "HYPERSWEEP_SERVER": "http://login1:8000"}
    env["HYPERSWEEP_WORKER_TOKEN"] = "w"
    del env[missing]
    result = subprocess.run(["bash", str(SCRIPT)], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0
    assert missing in result.stderr
    assert "hypersweep: command not found" not in result.stderr  # stopped before the worker
