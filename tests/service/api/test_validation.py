"""Invalid sweep documents are answered 422 with the bad field's path, and nothing is stored."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import sweep_doc
from tests.service.api.test_sweeps import API

LR = {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"}

CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown search kind", {"search": {"kind": "hyperband"}}, "search.kind", "'random', 'grid' or 'bayes'"),
    (
        "low equals high",
        {"space": {"lr": {"type": "float", "low": 0.1, "high": 0.1}}},
        "space.lr",
        "must be less than high",
    ),
    (
        "low above high",
        {"space": {"hidden": {"type": "int", "low": 64, "high": 32}}},
        "space.hidden",
        "must be less than high",
    ),
    (
        "log axis at zero",
        {"space": {"lr": {"type": "float", "low": 0.0, "high": 1.0, "scale": "log"}}},
        "space.lr",
        "log-scale axis needs low > 0",
    ),
    (
        "log axis below zero",
        {"space": {"reg": {"type": "float", "low": -1, "high": 1.0, "scale": "log"}}},
        "space.reg",
        "low > 0",
    ),
    ("unknown scale", {"space": {"lr": {**LR, "scale": "exp"}}}, "space.lr.scale", "'linear' or 'log'"),
    (
        "unknown parameter type",
        {"space": {"lr": {"type": "complex", "low": 1, "high": 2}}},
        "space.lr",
        "'float', 'int', 'categorical'",
    ),
    (
        "grid over 100 000 points",
        {
            "search": {"kind": "grid", "grid_points": 20},
            "space": {n: {"type": "float", "low": 0.0, "high": 0.5} for n in ("lr", "reg", "dropout", "momentum")},
        },
        "search.grid_points",
        "160,000 points",
    ),
    (
        "unknown trainer setting",
        {"trainer": {"dataset": "digits", "warmup": 3}},
        "trainer.warmup",
        "does not understand 'warmup'",
    ),
    (
        "unknown tuned parameter",
        {"space": {"warmup": {"type": "int", "low": 1, "high": 4}}},
        "space.warmup",
        "does not understand 'warmup'",
    ),
    ("trainer setting of wrong type", {"trainer": {"batch_size": "large"}}, "trainer.batch_size", "valid integer"),
    (
        "float axis on an integer setting",
        {"space": {"hidden": {"type": "float", "low": 8, "high": 64}}},
        "space.hidden.type",
        "use type: int",
    ),
    (
        "categorical value the trainer refuses",
        {"space": {"optimizer": {"type": "categorical", "values": ["sgd", "lion"]}}},
        "space.optimizer.values.1",
        "'lion'",
    ),
    (
        "numeric bound the trainer refuses",
        {"space": {"dropout": {"type": "float", "low": 0.1, "high": 1.5}}},
        "space.dropout.high",
        "dropout = 1.5",
    ),
    ("empty space", {"space": {}}, "space", "at least 1"),
    ("bad parameter name", {"space": {"Learning Rate": LR}}, "space.Learning Rate", "pattern"),
    ("no stages", {"stages": []}, "stages", "at least 1"),
    ("zero trials", {"stages": [{"trials": 0, "epochs": 1}]}, "stages.0.trials", "greater than or equal to 1"),
    ("random stage without trials", {"stages": [{"epochs": 1}]}, "stages.0.trials", "needs a number of trials"),
    ("top_k on the first stage", {"stages": [{"trials": 4, "top_k": 2}]}, "stages.0.top_k", "first stage has none"),
    (
        "top_k above the previous stage",
        {"stages": [{"trials": 4}, {"trials": 2, "top_k": 9}]},
        "stages.1.top_k",
        "more than the 4 trials",
    ),
    ("name too long", {"name": "x" * 201}, "name", "at most 200"),
    ("missing name", {"name": None}, "name", "valid string"),
    ("unknown mode", {"objective": {"metric": "val_accuracy", "mode": "best"}}, "objective.mode", "'max' or 'min'"),
    ("unknown top-level field", {"budget": 10}, "budget", "Extra inputs"),
    ("parallelism zero", {"parallelism": 0}, "parallelism", "greater than or equal to 1"),
    (
        "npz path leaving the data directory",
        {"trainer": {"dataset": "npz:../../etc/x.npz"}},
        "trainer.dataset",
        "without '..'",
    ),
    ("unknown data set", {"trainer": {"dataset": "imagenet"}}, "trainer.dataset", "pattern"),
]


@pytest.mark.parametrize(("case", "overrides", "path", "words"), CASES, ids=[c[0] for c in CASES])
def test_invalid_document_is_422_with_path_and_nothing_stored(
    client: TestClient, case: str, overrides: dict[str, Any], path: str, words: str
) -> None:
    response = client.post(f"{API}/sweeps", json=sweep_doc(**overrides))
    assert response.status_code == 422, response.text
    body = response.json()
    paths = [e["path"] for e in body["detail"]]
    assert path in paths, body
    entry = body["detail"][paths.index(path)]
    assert words in entry["msg"], entry
    assert entry["loc"][0] == "body"
    assert path in body["message"]
    assert client.get(f"{API}/sweeps").json() == []


def test_a_body_that_is_not_json_is_422(client: TestClient) -> None:
    response = client.post(f"{API}/sweeps", content=b"name: yaml?", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert client.get(f"{API}/sweeps").json() == []


def test_every_problem_is_reported_at_once(client: TestClient) -> None:
    doc = sweep_doc(trainer={"warmup": 1}, space={"foo": LR})
    paths = {e["path"] for e in client.post(f"{API}/sweeps", json=doc).json()["detail"]}
    assert {"trainer.warmup", "space.foo"} <= paths


def test_grid_stage_without_trials_runs_the_whole_grid(client: TestClient) -> None:
    doc = sweep_doc(search={"kind": "grid", "grid_points": 4}, stages=[{"epochs": 1}])
    sweep = client.post(f"{API}/sweeps", json=doc).json()
    assert sweep["stages"][0]["trials"] == 16
    assert sweep["warnings"] == []


def test_grid_stage_asking_for_more_than_the_grid_is_capped_with_a_warning(client: TestClient) -> None:
    doc = sweep_doc(search={"kind": "grid", "grid_points": 3}, stages=[{"trials": 50, "epochs": 1}])
    sweep = client.post(f"{API}/sweeps", json=doc).json()
    assert sweep["stages"][0]["trials"] == 9
    assert "grid has 9" in sweep["warnings"][0]


def test_a_valid_document_round_trips(client: TestClient) -> None:
    doc = sweep_doc(
        space={
            "lr": LR,
            "hidden": {"type": "int", "low": 32, "high": 512, "scale": "log"},
            "optimizer": {"type": "categorical", "values": ["sgd", "adam"]},
            "batchnorm": {"type": "categorical", "values": [True, False]},
        },
        stages=[{"trials": 4, "epochs": 1}, {"trials": 2, "epochs": 3, "top_k": 2, "search": {"kind": "grid"}}],
    )
    sweep = client.post(f"{API}/sweeps", json=doc).json()
    assert sweep["spec"]["space"]["optimizer"]["values"] == ["sgd", "adam"]
    assert sweep["spec"]["space"]["batchnorm"]["values"] == [True, False]
    assert sweep["stages"][1]["search"]["kind"] == "grid"
    assert sweep["spec"]["trainer"] == doc["trainer"]


def test_a_later_stage_without_top_k_narrows_around_the_three_best(client: TestClient) -> None:
    doc = sweep_doc(stages=[{"trials": 8, "epochs": 1}, {"trials": 4, "epochs": 3}, {"trials": 2, "epochs": 5}])
    sweep = client.post(f"{API}/sweeps", json=doc).json()
    assert [s["top_k"] for s in sweep["stages"]] == [None, 3, 3]


def test_a_default_top_k_is_at_most_the_trials_of_the_stage_before(client: TestClient) -> None:
    doc = sweep_doc(stages=[{"trials": 8, "epochs": 1}, {"trials": 2, "epochs": 3}, {"trials": 2, "epochs": 5}])
    sweep = client.post(f"{API}/sweeps", json=doc).json()
    assert [s["top_k"] for s in sweep["stages"]] == [None, 3, 2]
