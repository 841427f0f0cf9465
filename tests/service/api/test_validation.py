"""Invalid sweep documents are answered 422 with the bad field's path, and nothing is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import sweep_doc
from tests.service.api.test_sweeps import API

LR = {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"}

CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown search kind", {"search": {"kind": "hyperband"}}, "search.kind", "'bayes', 'lipo' or 'local'"),
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
    # What is stored is what runs: a setting takes its own type, in the range the trainer takes.
    ("boolean setting given as text", {"trainer": {"batchnorm": "false"}}, "trainer.batchnorm", "true or false"),
    ("boolean setting given as a number", {"trainer": {"batchnorm": 0}}, "trainer.batchnorm", "valid boolean"),
    ("whole-number setting given as a float", {"trainer": {"hidden": 64.0}}, "trainer.hidden", "not 64.0"),
    ("number setting given as text", {"trainer": {"lr": "0.1"}}, "trainer.lr", "valid number"),
    ("negative seed", {"trainer": {"seed": -1}}, "trainer.seed", "greater than or equal to 0"),
    ("seed past what the trainer seeds with", {"trainer": {"seed": 2**32}}, "trainer.seed", "4294967295"),
    ("seed past 64 bits", {"trainer": {"seed": 2**70}}, "trainer.seed", "beyond the 64-bit range"),
    ("epochs in the trainer section", {"trainer": {"epochs": 5}}, "trainer.epochs", "set by each stage"),
    (
        "categorical value of another type than its setting",
        {"space": {"batchnorm": {"type": "categorical", "values": [True, "false"]}}},
        "space.batchnorm.values.1",
        "true or false",
    ),
    (
        "categorical values that are one value of their setting",
        {"space": {"lr": {"type": "categorical", "values": [0.1, 1, 1.0]}}},
        "space.lr.values.2",
        "appears twice",
    ),
    (
        "seed axis past what the trainer seeds with",
        {"space": {"seed": {"type": "int", "low": 0, "high": 2**40}}},
        "space.seed.high",
        "seed = 1099511627776",
    ),
    # Numbers without bounds.
    (
        "int axis bound past 2**53",
        {"space": {"seed": {"type": "int", "low": 0, "high": 2**62}}},
        "space.seed.high",
        "less than or equal to 9007199254740992",
    ),
    (
        "axis bound past 64 bits",
        {"space": {"lr": {"type": "float", "low": 0.1, "high": 10**30}}},
        "space.lr.high",
        "beyond the 64-bit range",
    ),
    (
        "float axis too wide to sample",
        {"space": {"reg": {"type": "float", "low": -1.5e308, "high": 1.5e308}}},
        "space.reg",
        "too wide to sample",
    ),
    (
        "log axis too narrow to sample",
        {"space": {"lr": {"type": "float", "low": 1e10, "high": 1e10 + 2e-6, "scale": "log"}}},
        "space.lr",
        "too narrow to sample",
    ),
    ("search seed past 64 bits", {"search": {"kind": "random", "seed": 2**64}}, "search.seed", "64-bit"),
    ("parallelism past 64 bits", {"parallelism": -(2**65)}, "parallelism", "64-bit"),
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


@pytest.mark.parametrize("word", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_number_that_is_not_finite_anywhere_in_a_sweep_is_422(client: TestClient, word: str) -> None:
    # Python's JSON reads these words (and 1e999) as NaN and infinities; no field of a sweep,
    # the free-form trainer section included, may hold one.
    for doc in (sweep_doc(parallelism="PLACE"), sweep_doc(trainer={"divergence_factor": "PLACE"})):
        body = json.dumps(doc).replace('"PLACE"', word)
        response = client.post(f"{API}/sweeps", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text
        assert "finite" in response.json()["message"]
    assert client.get(f"{API}/sweeps").json() == []


def test_the_stored_document_is_the_checked_one(client: TestClient) -> None:
    doc = sweep_doc(
        trainer={"dataset": "spiral", "lr": 1, "momentum": 0, "hidden": 64, "batchnorm": True},
        space={"reg": {"type": "categorical", "values": [0, 1, 0.5]}, "dropout": LR | {"low": 0.1, "high": 0.5}},
    )
    response = client.post(f"{API}/sweeps", json=doc)
    assert response.status_code == 201, response.text
    stored = client.get(f"{API}/sweeps/{response.json()['id']}").json()["spec"]
    # Each value as the trainer holds it: the float settings as floats (JSON keeps 1.0 and 1 apart).
    trainer = stored["trainer"]
    assert trainer == {"dataset": "spiral", "lr": 1.0, "momentum": 0.0, "hidden": 64, "batchnorm": True}
    assert [type(trainer[k]) for k in ("lr", "momentum", "hidden", "batchnorm")] == [float, float, int, bool]
    assert stored["space"]["reg"]["values"] == [0.0, 1.0, 0.5]
    assert all(type(v) is float for v in stored["space"]["reg"]["values"])
    [trial] = client.post(f"{API}/trials/claim", json={"worker_id": "w"}).json()["trials"]
    assert type(trial["params"]["reg"]) is float and type(trial["trainer"]["lr"]) is float


def test_a_trainer_setting_the_space_tunes_is_kept_with_a_warning(client: TestClient) -> None:
    doc = sweep_doc(trainer={"dataset": "digits", "lr": 0.5})
    sweep = client.post(f"{API}/sweeps", json=doc).json()
    assert sweep["warnings"] == ["trainer.lr is not used: the space tunes lr, and a tuned value wins"]
    [trial] = client.post(f"{API}/trials/claim", json={"worker_id": "w"}).json()["trials"]
    assert trial["trainer"]["lr"] == trial["params"]["lr"] != 0.5


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
