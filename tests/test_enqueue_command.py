"""``hypersweep enqueue`` against a live server: values typed as numbers, the trial queued
ahead of the strategy's, and refusals in one line."""

from __future__ import annotations

import httpx
import pytest

from hypersweep.commands import parse_assignments
from tests.conftest import sweep_doc
from tests.test_commands import hs


def test_values_that_look_like_numbers_are_numbers() -> None:
    assert parse_assignments(["lr=0.01", "reg=1e-4", "hidden=64", "optimizer=adam", "batchnorm=true", "x=-.5"]) == {
        "lr": 0.01,
        "reg": 1e-4,
        "hidden": 64,
        "optimizer": "adam",
        "batchnorm": True,
        "x": -0.5,
    }
    for bad, words in [(["lr"], "NAME=VALUE"), (["=1"], "NAME=VALUE"), (["lr=1", "lr=2"], "twice")]:
        with pytest.raises(ValueError, match=words):
            parse_assignments(bad)


def test_enqueue_queues_the_trial_and_refuses_in_one_line(live_server: str) -> None:
    api = f"{live_server}/api/v1"
    sweep = httpx.post(f"{api}/sweeps", json=sweep_doc()).json()
    result = hs("enqueue", str(sweep["id"]), "lr=0.01", "dropout=0.1", server=live_server)
    assert result.exit_code == 0, result.output
    assert "enqueued trial 0 in stage 0 of sweep 1: lr=0.01, dropout=0.1" in result.output
    claimed = httpx.post(f"{api}/trials/claim", json={"worker_id": "w", "sweep_id": sweep["id"]}).json()["trials"]
    assert (claimed[0]["params"], claimed[0]["enqueued"]) == ({"lr": 0.01, "dropout": 0.1}, True)

    for args, words in [
        (["lr=0.01", "dropout=0.1"], "already has a trial with these params"),
        (["lr=5", "dropout=0.1"], "params.lr: 5 lies outside"),
        (["lr=0.01"], "params.dropout: missing"),
        (["lr"], "is not NAME=VALUE"),
    ]:
        result = hs("enqueue", str(sweep["id"]), *args, server=live_server)
        assert result.exit_code == 1, result.output
        assert words in result.output and "Traceback" not in result.output
    result = hs("enqueue", str(sweep["id"]), "lr=0.01", "dropout=0.1", "--allow-duplicate", server=live_server)
    assert result.exit_code == 0 and "enqueued trial 1" in result.output
