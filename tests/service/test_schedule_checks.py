"""service.schedule_checks: a learning-rate schedule that no trial could follow is refused at
submit time, at the path of the setting to change, whether it is fixed or tuned."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from hypersweep.service.schemas import SweepSpec
from hypersweep.service.validation import SpecError, check_spec
from tests.conftest import sweep_doc
from tests.service.api.test_sweeps import API

LR = {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"}


def problems(**overrides: Any) -> dict[str, str]:
    """The errors of a document as ``{"dotted.path": sentence}``; empty when it is valid."""
    try:
        check_spec(SweepSpec.model_validate(sweep_doc(**overrides)))
    except SpecError as exc:
        return {".".join(map(str, loc)): message for loc, message in exc.errors}
    return {}


def warnings(**overrides: Any) -> list[str]:
    return check_spec(SweepSpec.model_validate(sweep_doc(**overrides))).warnings


BAD: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "step without lr_step_epochs",
        {"trainer": {"lr_schedule": "step"}},
        "trainer.lr_schedule",
        "needs lr_step_epochs",
    ),
    (
        "step among tuned schedules without lr_step_epochs",
        {"space": {"lr": LR, "lr_schedule": {"type": "categorical", "values": ["constant", "step"]}}},
        "space.lr_schedule.values.1",
        "needs lr_step_epochs",
    ),
    (
        "exponential with a gamma that grows the rate",
        {"trainer": {"lr_schedule": "exponential", "lr_gamma": 1.5}},
        "trainer.lr_gamma",
        "between 0 and 1",
    ),
    (
        "step with a tuned gamma reaching 1",
        {
            "trainer": {"lr_schedule": "step", "lr_step_epochs": 1},
            "space": {"lr": LR, "lr_gamma": {"type": "float", "low": 0.1, "high": 1.0}},
        },
        "space.lr_gamma.high",
        "not 1.0",
    ),
    (
        "a fixed gamma one of the tuned schedules cannot take",
        {
            "trainer": {"lr_gamma": 3.0},
            "space": {"lr": LR, "lr_schedule": {"type": "categorical", "values": ["inverse_time", "exponential"]}},
        },
        "trainer.lr_gamma",
        "lr_schedule exponential",
    ),
    (
        "lr_step_epochs no shorter than any stage",
        {
            "trainer": {"lr_schedule": "step", "lr_step_epochs": 5},
            "stages": [{"trials": 2, "epochs": 3}, {"trials": 2, "epochs": 5}],
        },
        "trainer.lr_step_epochs",
        "no trial runs more than 5 epochs",
    ),
    (
        "a tuned lr_step_epochs no shorter than the tuned epochs",
        {
            "trainer": {"lr_schedule": "step"},
            "space": {
                "lr_step_epochs": {"type": "int", "low": 4, "high": 8},
                "epochs": {"type": "categorical", "values": [2, 4]},
            },
        },
        "space.lr_step_epochs.low",
        "the space's epochs",
    ),
    ("negative gamma", {"trainer": {"lr_gamma": -0.5}}, "trainer.lr_gamma", "greater than 0"),
    ("zero lr_step_epochs", {"trainer": {"lr_step_epochs": 0}}, "trainer.lr_step_epochs", "greater than or equal to 1"),
    ("unknown schedule", {"trainer": {"lr_schedule": "warm_restarts"}}, "trainer.lr_schedule", "'cosine'"),
    (
        "unknown activation among tuned ones",
        {"space": {"activation": {"type": "categorical", "values": ["prelu", "swish"]}}},
        "space.activation.values.1",
        "'maxout'",
    ),
]


@pytest.mark.parametrize(("case", "overrides", "path", "words"), BAD, ids=[case[0] for case in BAD])
def test_a_schedule_no_trial_could_follow_is_refused_at_its_path(
    case: str, overrides: dict[str, Any], path: str, words: str
) -> None:
    found = problems(**overrides)
    assert path in found, found
    assert words in found[path]


@pytest.mark.parametrize(
    "overrides",
    [
        {
            "trainer": {"lr_schedule": "step", "lr_step_epochs": 2},
            "stages": [{"trials": 2, "epochs": 1}, {"trials": 2, "epochs": 6}],
        },
        {"trainer": {"lr_schedule": "inverse_time", "lr_gamma": 10.0}},
        {"trainer": {"lr_schedule": "cosine", "activation": "maxout"}},
        {
            "trainer": {"lr_step_epochs": 3},
            "stages": [{"trials": 2, "epochs": 8}],
            "space": {
                "lr": LR,
                "lr_gamma": {"type": "float", "low": 0.05, "high": 0.9, "scale": "log"},
                "lr_schedule": {
                    "type": "categorical",
                    "values": ["constant", "step", "exponential", "inverse_time", "cosine"],
                },
                "activation": {"type": "categorical", "values": ["relu", "sigmoid", "prelu", "maxout"]},
            },
        },
    ],
)
def test_sensible_schedules_and_activations_pass(overrides: dict[str, Any]) -> None:
    assert problems(**overrides) == {}


def test_a_companion_no_schedule_reads_is_kept_with_a_warning() -> None:
    assert warnings(trainer={"lr_gamma": 0.1, "lr_step_epochs": 2}) == [
        "trainer.lr_gamma is not used: no trial's lr_schedule (constant) reads it",
        "trainer.lr_step_epochs is not used: no trial's lr_schedule (constant) reads it",
    ]
    assert warnings(trainer={"lr_schedule": "exponential", "lr_gamma": 0.1}) == []


def test_a_bad_schedule_is_422_with_its_path_and_a_good_one_reaches_the_trials(client: TestClient) -> None:
    response = client.post(f"{API}/sweeps", json=sweep_doc(trainer={"lr_schedule": "step"}))
    assert response.status_code == 422, response.text
    [entry] = response.json()["detail"]
    assert entry["path"] == "trainer.lr_schedule" and "lr_step_epochs" in entry["msg"]
    assert client.get(f"{API}/sweeps").json() == []

    knobs = {"lr_schedule": "step", "lr_step_epochs": 2, "lr_gamma": 0.1, "activation": "prelu"}
    response = client.post(f"{API}/sweeps", json=sweep_doc(trainer=knobs, stages=[{"trials": 1, "epochs": 3}]))
    assert response.status_code == 201, response.text
    [trial] = client.post(f"{API}/trials/claim", json={"worker_id": "w"}).json()["trials"]
    assert {name: trial["trainer"][name] for name in knobs} == knobs
