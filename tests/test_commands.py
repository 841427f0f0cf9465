"""The command line against a live server: every command works, and fails cleanly."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from hypersweep.cli import app
from tests.conftest import free_port, sweep_doc

runner = CliRunner()


def hs(*args: str, server: str | None = None) -> Any:
    argv = list(args)
    if server is not None:
        argv += ["--server", server]
    return runner.invoke(app, argv, env={"HYPERSWEEP_TOKEN": "", "COLUMNS": "200"})


def run_sweep(server: str, sweep_id: int, values: list[float]) -> None:
    """Claim and finish every trial over HTTP, as a worker would."""
    api = f"{server}/api/v1"
    for value in values:
        trial = httpx.post(f"{api}/trials/claim", json={"worker_id": "t", "sweep_id": sweep_id}).json()["trials"][0]
        body = {
            "lease_token": trial["lease_token"],
            "status": "completed",
            "metrics": {"val_accuracy": value, "test_accuracy": value - 0.01},
        }
        assert httpx.post(f"{api}/trials/{trial['id']}/finish", json=body).status_code == 200


@pytest.fixture
def sweep_file(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep_doc(stages=[{"trials": 3, "epochs": 1}])))
    return path


def test_submit_prints_the_id_and_where_to_watch(live_server: str, sweep_file: Path) -> None:
    result = hs("submit", str(sweep_file), server=live_server)
    assert result.exit_code == 0, result.output
    assert "submitted sweep 1" in result.output
    assert "hypersweep watch 1" in result.output
    assert httpx.get(f"{live_server}/api/v1/sweeps/1").json()["name"] == "test-sweep"


def test_submit_takes_json_too(live_server: str, tmp_path: Path) -> None:
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(sweep_doc()))
    assert hs("submit", str(path), server=live_server).exit_code == 0


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "no such file"),
        ("name: [unclosed", "is not valid YAML at line"),
        ("- just\n- a list\n", "must hold a sweep document"),
    ],
)
def test_submit_refuses_bad_files_in_one_line(
    live_server: str, tmp_path: Path, content: str | None, words: str
) -> None:
    path = tmp_path / "bad.yaml"
    if content is not None:
        path.write_text(content)
    result = hs("submit", str(path), server=live_server)
    assert result.exit_code == 1
    assert words in result.output
    assert "Traceback" not in result.output
    assert httpx.get(f"{live_server}/api/v1/sweeps").json() == []


def test_submit_shows_why_the_server_refused(live_server: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(sweep_doc(space={"lr": {"type": "float", "low": 0, "high": 1, "scale": "log"}})))
    result = hs("submit", str(path), server=live_server)
    assert result.exit_code == 1
    assert "refused" in result.output and "space.lr" in result.output and "low > 0" in result.output


def test_a_server_that_is_down_is_one_clear_line(sweep_file: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    for args in (["submit", str(sweep_file)], ["status", "1"], ["trials", "1"], ["export", "1"], ["watch", "1"]):
        result = hs(*args, server=down)
        assert result.exit_code == 1, args
        assert "cannot reach the hypersweep server" in result.output
        assert "Traceback" not in result.output


def test_a_missing_token_is_explained(start_server: Callable[..., str], sweep_file: Path) -> None:
    server = start_server(token="secret")
    result = hs("submit", str(sweep_file), server=server)
    assert result.exit_code == 1
    assert "needs a token" in result.output
    ok = runner.invoke(app, ["submit", str(sweep_file), "--server", server], env={"HYPERSWEEP_TOKEN": "secret"})
    assert ok.exit_code == 0, ok.output


def test_status_trials_watch_export_and_cancel(live_server: str, sweep_file: Path, tmp_path: Path) -> None:
    assert hs("submit", str(sweep_file), server=live_server).exit_code == 0
    run_sweep(live_server, 1, [0.5, 0.9, 0.7])

    status = hs("status", "1", server=live_server)
    assert status.exit_code == 0, status.output
    assert "completed" in status.output and "3/3" in status.output
    assert "best: trial 1 val_accuracy 0.9" in status.output

    trials = hs("trials", "1", server=live_server)
    assert trials.exit_code == 0
    rows = [line for line in trials.output.splitlines() if "completed" in line]
    assert len(rows) == 3
    assert "0.9" in rows[0]  # best first

    watch = hs("watch", "1", server=live_server)
    assert watch.exit_code == 0
    assert "sweep 1 completed" in watch.output

    exported = hs("export", "1", "--format", "csv", server=live_server)
    assert exported.exit_code == 0
    table = list(csv.DictReader(io.StringIO(exported.output)))
    assert [float(r["val_accuracy"]) for r in table] == [0.5, 0.9, 0.7]
    assert {"lr", "dropout", "test_accuracy", "status"} <= set(table[0])

    out_file = tmp_path / "trials.json"
    as_json = hs("export", "1", "--format", "json", "--output", str(out_file), server=live_server)
    assert as_json.exit_code == 0
    assert len(json.loads(out_file.read_text())) == 3
    assert hs("export", "1", "--format", "xml", server=live_server).exit_code == 1

    assert hs("submit", str(sweep_file), server=live_server).exit_code == 0
    cancelled = hs("cancel", "2", server=live_server)
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output
    done = hs("cancel", "1", server=live_server)
    assert done.exit_code == 1 and "already completed" in done.output


def test_unknown_sweep_is_one_clear_line(live_server: str) -> None:
    result = hs("status", "42", server=live_server)
    assert result.exit_code == 1
    assert "sweep 42 does not exist" in result.output


def test_demo_runs_the_bundled_sweep_to_the_end(tmp_path: Path) -> None:

    result = subprocess.run(
        [sys.executable, "-m", "hypersweep", "demo", "--port", str(free_port())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "best trials" in result.stdout
    assert "sweep completed" in result.stdout
    assert (tmp_path / "hypersweep-demo.db").exists()
    # The best trial learned digits: the first row of the table is above 0.9 validation accuracy.
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert float(rows[0].split("│")[3]) > 0.9


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("name: n\nspace: &s {lr: *s}\n", "recursive YAML anchor"),
        ("name: n\nspace: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("name: n\nspace: " + "[" * 70 + "]" * 70 + "\n", "nested more than 64 levels"),
        ("name: n\nstarted: !!timestamp 2024-01-01\n", "the date at started"),
        ("name: n\n!!timestamp 2024-01-01: c\n", "keys must be text"),
    ],
    ids=["recursive-anchor", "deep-for-the-parser", "deep", "explicit-date", "date-key"],
)
def test_a_file_json_cannot_carry_is_one_line_and_exit_1(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(content)
    # Refused before the server is asked: none answers here.
    result = hs("submit", str(path), server=f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0
    assert words in result.output


def test_a_date_in_a_name_is_read_as_the_text_it_is(live_server: str, tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep_doc()).replace("name: test-sweep", "name: 2024-01-01"))
    result = hs("submit", str(path), server=live_server)
    assert result.exit_code == 0, result.output
    assert httpx.get(f"{live_server}/api/v1/sweeps/1").json()["name"] == "2024-01-01"


def test_export_to_a_place_it_cannot_write_is_one_line(live_server: str, sweep_file: Path, tmp_path: Path) -> None:
    assert hs("submit", str(sweep_file), server=live_server).exit_code == 0
    for output, words in [
        (tmp_path / "missing" / "trials.csv", "there is no directory"),
        (tmp_path, "is a directory"),
    ]:
        result = hs("export", "1", "-o", str(output), server=live_server)
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
        assert "Traceback" not in result.output
        assert words in result.output and result.output.strip().count("\n") == 0


def test_a_wrong_token_is_called_wrong(start_server: Callable[..., str], sweep_file: Path) -> None:
    server = start_server(token="secret")
    result = hs("submit", str(sweep_file), "--token", "wrong", server=server)
    assert result.exit_code == 1
    assert "token: it is wrong" in result.output and "needs a token" not in result.output


def test_trials_prints_values_in_full_when_the_output_is_not_a_terminal(live_server: str, sweep_file: Path) -> None:
    assert hs("submit", str(sweep_file), server=live_server).exit_code == 0
    run_sweep(live_server, 1, [0.961234567, 0.5, 0.7])
    # Piped, at a narrow width: nothing is cut to fit.
    result = runner.invoke(app, ["trials", "1", "--server", live_server], env={"HYPERSWEEP_TOKEN": "", "COLUMNS": "60"})
    assert result.exit_code == 0, result.output
    assert "0.961234567" in result.output
    assert "…" not in result.output
    lr = httpx.get(f"{live_server}/api/v1/sweeps/1/trials", params={"sort": "-metric"}).json()[0]["params"]["lr"]
    assert repr(lr) in result.output


def test_watch_shows_each_stages_own_best(live_server: str, tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    stages = [{"trials": 3, "epochs": 1}, {"trials": 2, "epochs": 1, "top_k": 2}]
    path.write_text(yaml.safe_dump(sweep_doc(stages=stages)))
    assert hs("submit", str(path), server=live_server).exit_code == 0
    run_sweep(live_server, 1, [0.5, 0.9, 0.7, 0.6, 0.65])
    watch = hs("watch", "1", server=live_server)
    assert watch.exit_code == 0, watch.output
    lines = {line.split("(")[0].strip(): line for line in watch.output.splitlines() if line.startswith("stage ")}
    assert "best val_accuracy 0.9 " in lines["stage 0"]
    assert "best val_accuracy 0.65 " in lines["stage 1"]
