"""Parameter importance and contour grids: the computations (``importance``, ``contour``)
on made-up trials, and their endpoints with the per-process cache on every backend."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

from fastapi.testclient import TestClient

from hypersweep.service.dashboard.contour import RESOLUTION, contour_grid
from hypersweep.service.dashboard.importance import MAX_TRIALS, param_importances
from hypersweep.service.search.space import load_space
from tests.conftest import sweep_doc
from tests.service.api.test_sweeps import API, claim, submit

SPACE = load_space(
    {
        "lr": {"type": "float", "low": 1e-6, "high": 1.0, "scale": "log"},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5},
        "optimizer": {"type": "categorical", "values": ["sgd", "adam"]},
    }
)


def made_up(count: int, seed: int = 0) -> tuple[list[dict[str, Any]], list[float]]:
    """Trials whose objective depends on log10(lr) alone, peaking at 1e-3."""
    rng = random.Random(seed)
    params = [
        {"lr": 10 ** rng.uniform(-6, 0), "dropout": rng.uniform(0, 0.5), "optimizer": rng.choice(["sgd", "adam"])}
        for _ in range(count)
    ]
    return params, [1 - (math.log10(p["lr"]) + 3) ** 2 / 9 for p in params]


def test_the_parameter_that_drives_the_objective_comes_first() -> None:
    params, values = made_up(300)
    result = param_importances(SPACE, params, values, minimize=False)
    assert result.shares is not None and result.note is None
    assert next(iter(result.shares)) == "lr"
    assert result.shares["lr"] > 0.8
    assert math.isclose(sum(result.shares.values()), 1.0)
    assert (result.trials, result.used) == (300, 300)


def test_a_log_axis_is_evaluated_in_log10() -> None:
    # The objective changes only below lr = 1e-3: three of six decades, but a sliver of the
    # raw axis. In log10 lr explains it; on raw values the forest would barely see it.
    rng = random.Random(1)
    params = [
        {"lr": 10 ** rng.uniform(-6, 0), "dropout": rng.uniform(0, 0.5), "optimizer": rng.choice(["sgd", "adam"])}
        for _ in range(300)
    ]
    values = [(0.9 if p["lr"] < 1e-3 else 0.5) + 0.2 * p["dropout"] for p in params]
    result = param_importances(SPACE, params, values, minimize=False)
    assert result.shares is not None
    assert result.shares["lr"] > result.shares["dropout"]


def test_every_evaluator_answers_and_big_sets_are_sampled() -> None:
    params, values = made_up(MAX_TRIALS + 200)
    for evaluator in ("fanova", "ped_anova", "mean_decrease_impurity"):
        result = param_importances(SPACE, params, values, minimize=True, evaluator=evaluator)
        assert result.shares is not None and next(iter(result.shares)) == "lr", evaluator
        assert (result.trials, result.used) == (MAX_TRIALS + 200, MAX_TRIALS)


def test_too_little_to_evaluate_is_an_answer_with_a_note() -> None:
    params, values = made_up(5)
    one = param_importances(SPACE, params[:1], values[:1], minimize=False)
    assert one.shares is None and one.note and "at least 2" in one.note
    flat = param_importances(SPACE, params, [0.5] * 5, minimize=False)
    assert flat.shares is None and flat.note and "same value" in flat.note
    single = param_importances({"lr": SPACE["lr"]}, params, values, minimize=False)
    assert single.shares is None and single.note and "One parameter" in single.note
    # Trials without a value or a parameter are left out, not fatal.
    holes = param_importances(SPACE, [*params, {"lr": 0.1}], [*values, 0.3], minimize=False)
    assert holes.trials == 5


def test_a_contour_grid_is_even_in_each_axis_scale_and_blank_outside_the_trials() -> None:
    params, values = made_up(200)
    grid = contour_grid(SPACE, "lr", "dropout", params, values)
    assert grid.note is None and grid.trials == 200
    assert (grid.x.scale, grid.y.scale) == ("log10", "linear")
    assert len(grid.x.values) == len(grid.y.values) == RESOLUTION
    logs = [math.log10(v) for v in grid.x.values]
    steps = {round(b - a, 9) for a, b in itertools.pairwise(logs)}
    assert len(steps) == 1 and math.isclose(logs[0], -6) and math.isclose(logs[-1], 0)
    cells = [c for row in grid.z for c in row]
    filled = [c for c in cells if c is not None]
    assert len(filled) > 0.5 * len(cells)
    assert min(values) - 1e-9 <= min(filled) and max(filled) <= max(values) + 1e-9
    # The corners lie outside the hull of 200 random trials, almost surely in one of them.
    assert None in (grid.z[0][0], grid.z[0][-1], grid.z[-1][0], grid.z[-1][-1])
    # Interpolated in log10 lr: the best band is around lr = 1e-3 along every row.
    middle = grid.z[RESOLUTION // 2]
    best = max(range(RESOLUTION), key=lambda i: -math.inf if middle[i] is None else middle[i])
    assert 1e-4 < grid.x.values[best] < 1e-2

    categorical = contour_grid(SPACE, "optimizer", "lr", params, values)
    assert categorical.x.values == ["sgd", "adam"] and len(categorical.z) == RESOLUTION
    assert contour_grid(SPACE, "lr", "dropout", params[:2], values[:2]).note


def _run_stage(client: TestClient, sweep_id: int, count: int) -> None:
    trials = claim(client, sweep_id, count=count)
    assert len(trials) == count
    for trial in trials:
        value = 1 - (math.log10(trial["params"]["lr"]) + 2) ** 2 / 9
        body = {"lease_token": trial["lease_token"], "status": "completed", "metrics": {"val_accuracy": value}}
        assert client.post(f"{API}/trials/{trial['id']}/finish", json=body).status_code == 200


def test_the_importance_endpoint_answers_overall_and_per_stage_and_caches(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 30, "epochs": 1}, {"trials": 6, "epochs": 2, "top_k": 5}], parallelism=64)
    url = f"{API}/sweeps/{sweep['id']}/importance"
    empty = client.get(url).json()
    assert empty["overall"]["importances"] is None and "at least 2" in empty["overall"]["note"]
    assert empty["stages"] == [] and empty["scales"] == {"lr": "log10", "dropout": "linear"}

    _run_stage(client, sweep["id"], 30)
    analyses = client.app.state.analyses  # type: ignore[attr-defined]
    first = client.get(url).json()
    assert first["evaluator"] == "fanova"
    assert next(iter(first["overall"]["importances"])) == "lr"
    assert [s["stage"] for s in first["stages"]] == [0]
    assert first["stages"][0]["importances"] == first["overall"]["importances"]
    computed = analyses.computed
    assert client.get(url).json() == first
    assert analyses.computed == computed, "an unchanged stage is answered from the cache"

    (one,) = claim(client, sweep["id"], count=1)
    body = {"lease_token": one["lease_token"], "status": "completed", "metrics": {"val_accuracy": 0.5}}
    assert client.post(f"{API}/trials/{one['id']}/finish", json=body).status_code == 200
    later = client.get(url).json()
    assert analyses.computed > computed, "a newly completed trial makes it compute again"
    assert [(s["stage"], s["trials"]) for s in later["stages"]] == [(0, 30), (1, 1)]
    assert later["overall"]["trials"] == 31
    assert later["stages"][1]["importances"] is None and later["stages"][1]["note"]

    other = client.get(url, params={"evaluator": "ped_anova"}).json()
    assert other["evaluator"] == "ped_anova" and other["overall"]["importances"]
    bad = client.get(url, params={"evaluator": "shap"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["path"] == "evaluator"
    assert client.get(f"{API}/sweeps/999/importance").status_code == 404


def test_the_contour_endpoint_answers_a_grid_and_refuses_unknown_parameters(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 20, "epochs": 1}], parallelism=64)
    _run_stage(client, sweep["id"], 20)
    url = f"{API}/sweeps/{sweep['id']}/contour"
    body = client.get(url, params={"x": "lr", "y": "dropout"}).json()
    assert body["trials"] == 20 and body["note"] is None
    assert body["x"]["name"] == "lr" and body["x"]["scale"] == "log10"
    assert len(body["z"]) == len(body["y"]["values"]) == RESOLUTION
    assert client.get(url, params={"x": "lr", "y": "dropout", "stage": 3}).json()["trials"] == 0
    # Without x and y: the first two numeric parameters, as the dashboard picks them.
    assert client.get(url).json() == body
    bad = client.get(url, params={"x": "lr", "y": "momentum"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["path"] == "y" and "momentum" in bad.json()["message"]
    assert client.get(f"{API}/sweeps/999/contour", params={"x": "lr", "y": "dropout"}).status_code == 404


def test_both_endpoints_need_the_token_when_one_is_set(make_client: Any) -> None:
    secured: TestClient = make_client(token="s3cret")
    auth = {"Authorization": "Bearer s3cret"}
    sweep = secured.post(f"{API}/sweeps", json=sweep_doc(), headers=auth).json()
    for path in (f"/sweeps/{sweep['id']}/importance", f"/sweeps/{sweep['id']}/contour?x=lr&y=dropout"):
        assert secured.get(f"{API}{path}").status_code == 401
        assert secured.get(f"{API}{path}", headers=auth).status_code == 200


def test_a_trial_shows_its_resolved_settings(client: TestClient) -> None:
    builtin = submit(client, trainer={"dataset": "digits", "batch_size": 32})
    (trial,) = claim(client, builtin["id"])
    settings = client.get(f"{API}/trials/{trial['id']}").json()["settings"]
    assert settings == trial["trainer"]
    assert settings["batch_size"] == 32 and settings["epochs"] == 1 and settings["lr"] == trial["params"]["lr"]
    assert "divergence_factor" in settings, "the built-in trainer's defaults are part of it"

    program = submit(client, program="my-prog", trainer={"width": 3, "lr": 9.0})
    [mine] = client.post(
        f"{API}/trials/claim", json={"worker_id": "w", "sweep_id": program["id"], "program": "my-prog"}
    ).json()["trials"]
    settings = client.get(f"{API}/trials/{mine['id']}").json()["settings"]
    assert settings == {"width": 3, "epochs": 1, **mine["params"]}


def test_points_give_each_trial_its_place_in_finishing_order(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 3, "epochs": 1}])
    first, second, _third = claim(client, sweep["id"], count=3)
    for trial in (second, first):
        body = {"lease_token": trial["lease_token"], "status": "completed", "metrics": {"val_accuracy": 0.5}}
        assert client.post(f"{API}/trials/{trial['id']}/finish", json=body).status_code == 200
    points = client.get(f"{API}/sweeps/{sweep['id']}/points").json()
    finished = points["finished"]
    assert finished[2] is None
    assert 0 <= finished[1] <= finished[0]


def test_the_trials_handed_to_optuna_directly_give_what_a_real_study_gives(monkeypatch: Any) -> None:
    from hypersweep.service.dashboard import importance

    params, values = made_up(200)
    direct = param_importances(SPACE, params, values, minimize=False)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AttributeError("no such part of a study")

    # An Optuna that reads more of a study than the view has: the real study is used.
    monkeypatch.setattr(importance._Trials, "_is_multi_objective", refuse)
    through_a_study = param_importances(SPACE, params, values, minimize=False)
    assert direct.shares == through_a_study.shares
