"""The dashboard in a real headless Chromium against a real server: the sweeps list, a
sweep's page (plots, curves, table, filters), a trial's page, live updates and the token
prompt, and the plots added to them (history, importance, contour). The documentation's
picture of a sweep page is made by scripts/screenshot, never by a test run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page, Route, expect

from tests.dashboard.conftest import (
    FINISHED_STAGES,
    RUNNING_TRIALS,
    Dashboard,
    chart_series,
    open_sweep,
    submit,
    trial_marks,
    wait_for,
)
from tests.dashboard.synthetic import SPACE, finish_trials, insert_finished_trials, sweep_document

#: The most lines the page's parallel coordinates draw (PARALLEL_MAX in charts.js).
PARALLEL_MAX = 2000
FINISHED = ("completed", "diverged", "pruned", "failed", "cancelled")


def test_sweeps_page_lists_sweeps_newest_first_with_progress_and_best(page: Page, dashboard: Dashboard) -> None:
    page.goto(f"{dashboard.url}/#/")
    page.wait_for_selector("main[data-ready]")
    rows = page.locator("#sweeps-table tbody tr")
    ids = [int(rows.nth(i).get_attribute("data-sweep-id") or -1) for i in range(rows.count())]
    finished, running = dashboard.finished, dashboard.running
    assert ids.index(running["id"]) < ids.index(finished["id"])

    row = page.locator(f"#sweeps-table tr[data-sweep-id='{finished['id']}']")
    expect(row.locator("a.name")).to_have_text(finished["name"])
    expect(row.locator("a.name")).to_have_attribute("href", f"#/sweeps/{finished['id']}")
    expect(row.locator(".badge")).to_have_text("completed")
    expect(row.locator(".stage-line .count")).to_have_text([f"{n}/{n}" for n, _ in FINISHED_STAGES])
    best = finished["best"]
    expect(row.locator(".best")).to_contain_text(f"{best['value']:.4g}")
    expect(row.locator(".best a")).to_have_attribute("href", f"#/trials/{best['id']}")

    row = page.locator(f"#sweeps-table tr[data-sweep-id='{running['id']}']")
    expect(row.locator(".badge")).to_have_text("running")
    done = sum(n for status, n in running["counts"].items() if status in FINISHED)
    expect(row.locator(".stage-line .count")).to_have_text(f"{done}/{RUNNING_TRIALS}")

    row.locator("a.name").click()
    page.wait_for_url(f"**/#/sweeps/{running['id']}")
    expect(page.locator("#sweep-header h1")).to_contain_text(running["name"])


def test_sweep_page_draws_one_mark_per_finished_trial_on_log_axes(page: Page, dashboard: Dashboard) -> None:
    sweep = dashboard.finished
    trials = dashboard.trials(sweep["id"])
    diverged = [t for t in trials if t["status"] == "diverged"]
    failed = [t for t in trials if t["status"] == "failed"]
    assert diverged and failed, "the seeded sweep should have diverged and failed trials"
    open_sweep(page, dashboard.url, sweep["id"])

    for name in ("lr", "reg", "dropout"):
        assert trial_marks(page, f"objective:{name}") == len(trials), name
        node = page.locator(f"[data-chart='objective:{name}']")
        expect(node).to_have_attribute("data-marks", str(len(trials)))
    assert _axis_type(page, "objective:lr") == "log"
    assert _axis_type(page, "objective:reg") == "log"
    assert _axis_type(page, "objective:dropout") == "value"

    # Diverged and failed trials are series of their own, in shapes of their own.
    series = {s["id"]: s for s in chart_series(page, "objective:lr")}
    assert series["trials:diverged"]["count"] == len(diverged)
    assert series["trials:failed"]["count"] == len(failed)
    assert series["trials:stage 0"]["symbol"] == "circle"
    assert series["trials:diverged"]["symbol"] == "triangle"
    assert series["trials:failed"]["symbol"] == "diamond"
    lr_of_diverged = sorted(t["params"]["lr"] for t in diverged)
    assert sorted(point[0] for point in series["trials:diverged"]["data"]) == lr_of_diverged

    assert trial_marks(page, "pair") == len(trials)
    assert trial_marks(page, "parallel") == len(trials)

    expect(page.locator(".stage-card")).to_have_count(len(FINISHED_STAGES))
    expect(page.locator(".stage-card[data-stage='1'] .space")).to_contain_text("lr")
    expect(page.locator("#best")).to_contain_text(f"{sweep['best']['value']:.4g}")


def test_a_big_sweep_draws_every_trial_and_samples_parallel_coordinates(page: Page, dashboard: Dashboard) -> None:
    count = 3000
    sweep = submit(dashboard.api, sweep_document("big", trials=count, epochs=1))
    insert_finished_trials(dashboard.database_url, sweep["id"], count)
    open_sweep(page, dashboard.url, sweep["id"])
    for name in ("lr", "reg", "dropout"):
        assert trial_marks(page, f"objective:{name}") == count
    series = chart_series(page, "objective:lr")
    assert any(s["id"] == "trials:diverged" and s["count"] > 0 for s in series)
    assert trial_marks(page, "pair") == count
    assert trial_marks(page, "history") == count
    expect(page.locator("#importance-note")).to_contain_text(f"over {count - _failed_or_diverged(dashboard, sweep):,}")
    assert _option(page, "contour", "series[0].data.length") > 0
    # Parallel coordinates draw a line per trial up to PARALLEL_MAX, and say so beyond.
    assert trial_marks(page, "parallel") == PARALLEL_MAX
    expect(page.locator("#parallel-note")).to_contain_text(f"{PARALLEL_MAX:,} of {count:,} trials")
    expect(page.locator(".table-note")).to_contain_text(f"of {count} trials")


def test_the_sweep_page_waits_for_a_slow_chart_library(page: Page, dashboard: Dashboard) -> None:
    """The library loads alongside the data; the page must not draw before it is there."""

    def slowly(route: Route) -> None:
        time.sleep(1.5)
        route.continue_()

    page.route("**/vendor/echarts.min.js", slowly)
    sweep = dashboard.finished
    open_sweep(page, dashboard.url, sweep["id"])
    assert trial_marks(page, "objective:lr") == len(dashboard.trials(sweep["id"]))


def test_an_unknown_sweep_or_trial_shows_only_an_error(page: Page, dashboard: Dashboard) -> None:
    page.goto(f"{dashboard.url}/#/sweeps/99999")
    expect(page.locator(".error-box")).to_have_text("sweep 99999 does not exist")
    expect(page.locator("[data-chart]")).to_have_count(0)
    page.goto(f"{dashboard.url}/#/trials/99999")
    expect(page.locator(".error-box")).to_have_text("trial 99999 does not exist")
    expect(page.locator("[data-chart]")).to_have_count(0)


def test_best_trials_table_is_sorted_best_first_and_sortable(page: Page, dashboard: Dashboard) -> None:
    sweep = dashboard.finished
    best_first = dashboard.trials(sweep["id"], sort="-metric")
    open_sweep(page, dashboard.url, sweep["id"])
    rows = page.locator("#trials-table tbody tr")
    expect(rows.first).to_have_attribute("data-trial-id", str(best_first[0]["id"]))
    assert _row_ids(page)[:10] == [t["id"] for t in best_first[:10]]

    page.locator("#trials-table th[data-sort='number']").click()
    expect(rows.first).to_have_attribute("data-trial-id", str(min(t["id"] for t in best_first)))
    page.locator("#trials-table th[data-sort='param:lr']").click()
    lrs = [float(v) for v in rows.locator("td:nth-child(5)").all_inner_texts()]
    assert lrs == sorted(lrs)


def test_curves_of_the_best_trials_appear_and_a_picked_diverged_one_is_cut_short(
    page: Page, dashboard: Dashboard
) -> None:
    sweep = dashboard.finished
    best = [t["id"] for t in dashboard.trials(sweep["id"], sort="-metric", status="completed", limit=5)]
    open_sweep(page, dashboard.url, sweep["id"])
    curves = page.locator("[data-chart='curves']")
    expect(curves).to_have_attribute("data-trials", ",".join(map(str, best)))
    for line in chart_series(page, "curves"):
        assert line["count"] >= FINISHED_STAGES[0][1], line["name"]

    diverged = next(t for t in dashboard.trials(sweep["id"], status="diverged") if t["metrics"]["epochs_run"] > 1)
    # Show only the diverged trials, pick one in the table, then bring the others back.
    for status in ("completed", "failed"):
        page.locator(f"#filters button[data-status='{status}']").click()
    row = page.locator(f"#trials-table tr[data-trial-id='{diverged['id']}']")
    expect(row.locator(".badge")).to_have_text("diverged")
    row.locator("td:nth-child(3)").click()
    expect(row).to_have_class("picked")
    for status in ("completed", "failed"):
        page.locator(f"#filters button[data-status='{status}']").click()
    expect(curves).to_have_attribute("data-trials", ",".join(map(str, [*best, diverged["id"]])))
    line = next(s for s in chart_series(page, "curves") if s["id"] == f"curve:{diverged['id']}")
    epochs = sweep["stages"][diverged["stage"]]["epochs"]
    last_epoch = line["data"][-1][0]
    assert last_epoch == diverged["metrics"]["epochs_run"] < epochs
    assert line["markPoint"] and line["markPoint"][0]["coord"] == line["data"][-1]


def test_status_and_stage_filters_change_the_plots_and_the_table(page: Page, dashboard: Dashboard) -> None:
    sweep = dashboard.finished
    trials = dashboard.trials(sweep["id"])
    open_sweep(page, dashboard.url, sweep["id"])
    diverged = sum(t["status"] == "diverged" for t in trials)

    chip = page.locator("#filters button[data-status='diverged']")
    expect(chip).to_have_attribute("aria-pressed", "true")
    chip.click()
    expect(chip).to_have_attribute("aria-pressed", "false")
    expect(page.locator("[data-chart='objective:lr']")).to_have_attribute("data-marks", str(len(trials) - diverged))
    assert trial_marks(page, "objective:lr") == len(trials) - diverged
    assert "diverged" not in _row_statuses(page)
    page.locator(".table-note button").click()
    assert "diverged" not in _row_statuses(page)

    chip.click()
    page.select_option("#stage-filter", "1")
    stage_one = [t for t in trials if t["stage"] == 1]
    expect(page.locator("[data-chart='objective:lr']")).to_have_attribute("data-marks", str(len(stage_one)))
    assert {t["id"] for t in stage_one} == set(_row_ids(page))
    series_ids = {s["id"] for s in chart_series(page, "objective:lr")}
    assert "trials:stage 0" not in series_ids


def test_trial_page_shows_params_timings_curve_and_error(page: Page, dashboard: Dashboard) -> None:
    sweep = dashboard.finished
    failed = dashboard.trials(sweep["id"], status="failed")[0]
    page.goto(f"{dashboard.url}/#/trials/{failed['id']}")
    page.wait_for_selector("main[data-ready]")
    expect(page.locator("h1 .badge")).to_have_text("failed")
    expect(page.locator("#trial-error pre")).to_contain_text("RuntimeError: out of memory")
    expect(page.locator("#trial-summary")).to_contain_text("attempt 1")
    expect(page.locator("#trial-summary")).to_contain_text("worker synthetic")

    best = sweep["best"]
    page.goto(f"{dashboard.url}/#/trials/{best['id']}")
    expect(page.locator("h1")).to_contain_text(f"Trial #{best['number']}")
    expect(page.locator("h1 .badge")).to_have_text("completed")
    settings = page.locator("#trial-settings")
    expect(settings.locator("tr.tuned th")).to_contain_text(["lr", "reg", "dropout", "optimizer"])
    # The fixed settings too: the sweep's trainer section, the stage's epochs, the defaults.
    expect(settings.locator("tr[data-setting='dataset'] td")).to_have_text("digits")
    expect(settings.locator("tr[data-setting='epochs'] td")).to_have_text(str(sweep["stages"][best["stage"]]["epochs"]))
    expect(settings.locator("tr[data-setting='batch_size'] td")).to_have_text("64")
    expect(page.locator("#trial-value")).to_have_text(f"{best['value']:.4g}")
    expect(page.locator("#trial-error")).to_be_empty()
    epochs = sweep["stages"][best["stage"]]["epochs"]
    lines = {s["name"]: s for s in chart_series(page, "trial-loss")}
    assert set(lines) == {"train_loss", "val_loss"}
    assert lines["train_loss"]["count"] == epochs
    assert [s["count"] for s in chart_series(page, "trial-metrics")] == [epochs]

    diverged = dashboard.trials(sweep["id"], status="diverged")[0]
    page.goto(f"{dashboard.url}/#/trials/{diverged['id']}")
    expect(page.locator("#stopped")).to_contain_text(f"stopped in epoch {diverged['metrics']['epochs_run']}")
    page.locator(".crumbs a").click()
    page.wait_for_url(f"**/#/sweeps/{sweep['id']}")


def test_a_running_sweep_updates_itself_while_trials_finish(page: Page, dashboard: Dashboard) -> None:
    total, first, then = 12, 4, 4
    sweep = submit(dashboard.api, sweep_document("live", trials=total, epochs=1))
    finish_trials(dashboard.api, sweep["id"], first, epochs=1)
    open_sweep(page, dashboard.url, sweep["id"])
    chart = page.locator("[data-chart='objective:lr']")
    expect(chart).to_have_attribute("data-marks", str(first))
    expect(page.locator("#live")).to_contain_text("live")
    page.evaluate("window.notReloaded = true")

    finish_trials(dashboard.api, sweep["id"], then, epochs=1)
    expect(chart).to_have_attribute("data-marks", str(first + then))
    assert trial_marks(page, "objective:lr") == first + then
    expect(page.locator(".stage-card .count")).to_have_text(f"{first + then}/{total}")

    finish_trials(dashboard.api, sweep["id"], total, epochs=1)
    expect(page.locator("#sweep-header h1 .badge")).to_have_text("completed")
    expect(chart).to_have_attribute("data-marks", str(total))
    assert page.evaluate("window.notReloaded") is True
    # A finished sweep stops polling.
    expect(page.locator("#live")).to_be_hidden()


def test_the_page_asks_for_the_token_once_and_sends_it(page: Page, start_server: Callable[..., str]) -> None:
    url = start_server(token="s3cret")
    sent: list[str | None] = []
    page.on("request", lambda r: sent.append(r.headers.get("authorization")) if "/api/v1/" in r.url else None)
    page.goto(f"{url}/#/")
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    page.fill("#token-input", "wrong")
    page.click("#token-submit")
    expect(page.locator("#token-error")).to_be_visible()
    page.fill("#token-input", "s3cret")
    page.click("#token-submit")
    expect(dialog).to_be_hidden()
    page.wait_for_selector("main[data-ready]")
    expect(page.locator("#sweeps-table")).to_contain_text("No sweeps yet")
    assert page.evaluate("localStorage.getItem('hypersweep.token')") == "s3cret"
    assert sent[-1] == "Bearer s3cret"

    # Stored: the next visit asks nothing.
    page.reload()
    page.wait_for_selector("main[data-ready]")
    expect(dialog).to_be_hidden()
    wait_for(page, lambda: sent[-1] == "Bearer s3cret", "the stored token to be sent")
    expect(page.locator("#forget-token")).to_be_visible()


def test_optimisation_history_shows_each_finished_trial_in_finishing_order_with_best_so_far_per_stage(
    page: Page, dashboard: Dashboard
) -> None:
    sweep = dashboard.finished
    trials = dashboard.trials(sweep["id"])
    open_sweep(page, dashboard.url, sweep["id"])
    assert trial_marks(page, "history") == len(trials)
    series = {s["id"]: s for s in chart_series(page, "history")}
    by_status = {status: sum(t["status"] == status for t in trials) for status in ("completed", "diverged", "failed")}
    assert {k: series[f"trials:{k}"]["count"] for k in by_status} == by_status
    # In finishing order: x runs 1..n, and the trials finished stage by stage.
    xs = sorted(x for s in series.values() if str(s["id"]).startswith("trials:") for x, _ in s["data"])
    assert xs == list(range(1, len(trials) + 1))
    for stage in (0, 1):
        line = series[f"best:{stage}"]["data"]
        completed = [t["value"] for t in trials if t["stage"] == stage and t["status"] == "completed"]
        assert [y for _, y in line] == sorted(y for _, y in line), "best so far never gets worse (max)"
        assert line[-1][1] == max(completed)
        assert len(line) == len(completed)
    assert max(x for x, _ in series["best:0"]["data"]) < min(x for x, _ in series["best:1"]["data"])

    page.select_option("#stage-filter", "1")
    stage_one = [t for t in trials if t["stage"] == 1]
    expect(page.locator("[data-chart='history']")).to_have_attribute("data-marks", str(len(stage_one)))
    assert {s["id"] for s in chart_series(page, "history") if str(s["id"]).startswith("best:")} == {"best:1"}


def test_importance_bars_are_the_servers_shares_per_stage_filter(page: Page, dashboard: Dashboard) -> None:
    sweep = dashboard.finished
    answer = dashboard.api.get(f"/sweeps/{sweep['id']}/importance").raise_for_status().json()
    open_sweep(page, dashboard.url, sweep["id"])
    chart = page.locator("[data-chart='importance']")
    overall = answer["overall"]["importances"]
    assert next(iter(overall)) == "lr", "lr drives the made-up objective"
    wait_for(page, lambda: json.loads(chart.get_attribute("data-importance") or "{}") == overall, "the bars")
    # The most important parameter is the top bar: the last category of the y axis.
    assert _option(page, "importance", "yAxis[0].data")[-1] == "lr"
    assert _option(page, "importance", "series[0].data.length") == len(SPACE)
    completed = sum(t["status"] == "completed" for t in dashboard.trials(sweep["id"]))
    expect(page.locator("#importance-note")).to_contain_text(f"fANOVA over {completed} completed trials")
    expect(page.locator("#importance-note")).to_contain_text("lr, reg in log10")

    page.select_option("#stage-filter", "1")
    stage_one = answer["stages"][1]["importances"]
    wait_for(page, lambda: json.loads(chart.get_attribute("data-importance") or "{}") == stage_one, "stage 1's bars")


def test_the_contour_fills_the_servers_grid_on_log_axes_and_follows_the_pair(page: Page, dashboard: Dashboard) -> None:
    sweep = dashboard.finished
    grid = dashboard.api.get(f"/sweeps/{sweep['id']}/contour", params={"x": "lr", "y": "reg"}).raise_for_status().json()
    open_sweep(page, dashboard.url, sweep["id"])
    filled = sum(z is not None for row in grid["z"] for z in row)
    chart = page.locator("[data-chart='contour']")
    expect(chart).to_have_attribute("data-cells", str(filled))
    # Drawn as runs of cells of one colour band along each row.
    assert 0 < _option(page, "contour", "series[0].data.length") <= filled
    assert (_option(page, "contour", "xAxis[0].type"), _option(page, "contour", "yAxis[0].type")) == ("log", "log")
    completed = sum(t["status"] == "completed" for t in dashboard.trials(sweep["id"]))
    assert _option(page, "contour", "series[1].trials.length") == completed
    expect(page.locator("#contour-note")).to_contain_text(f"over {completed} completed trials")

    page.select_option("#pair-y", "optimizer")
    wait_for(page, lambda: _option(page, "contour", "yAxis[0].name") == "optimizer", "the contour of lr and optimizer")
    assert _option(page, "contour", "yAxis[0].data") == SPACE["optimizer"]["values"]
    assert _option(page, "contour", "xAxis[0].name") == "lr"


def test_parallel_coordinates_label_categories_and_stages_have_distinct_colours(
    page: Page, dashboard: Dashboard
) -> None:
    sweep = dashboard.finished
    open_sweep(page, dashboard.url, sweep["id"])
    axes = _option(page, "parallel", "parallelAxis")
    optimizer = next(a for a in axes if a["name"] == "optimizer")
    assert optimizer["type"] == "category" and optimizer["data"] == SPACE["optimizer"]["values"]
    assert optimizer["axisLabel"]["interval"] == 0
    # Tick labels sit on a backing drawn above the lines.
    assert all(a["axisLabel"].get("backgroundColor") for a in axes)
    colours = page.evaluate(
        """() => window.echarts.getInstanceByDom(document.querySelector('[data-chart="objective:lr"]'))
            .getOption().series.filter((s) => s && s.id.startsWith("trials:stage")).map((s) => s.itemStyle.color)"""
    )
    assert colours == ["#0072B2", "#E69F00"]


def test_a_programs_own_metrics_and_steps_plot_like_the_built_in_ones(page: Page, dashboard: Dashboard) -> None:
    document = {
        "name": "program-metrics",
        "program": "my-model",
        "objective": {"metric": "top5", "mode": "max"},
        "space": {
            "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "scale": "log"},
            "width": {"type": "int", "low": 8, "high": 64},
        },
        "stages": [{"trials": 2, "epochs": 2}],
        "trainer": {"batch_size": 100},
    }
    sweep = submit(dashboard.api, document)
    claimed = dashboard.api.post(
        "/trials/claim", json={"worker_id": "prog", "sweep_id": sweep["id"], "program": "my-model", "count": 2}
    ).json()["trials"]
    for n, trial in enumerate(claimed):
        for step in range(1, 41):  # a program may report per batch, past the stage's epochs
            metrics = {"nll": 2.0 / step, "top5": 0.5 + 0.01 * step + 0.01 * n}
            body = {"lease_token": trial["lease_token"], "step": step, "metrics": metrics}
            dashboard.api.post(f"/trials/{trial['id']}/report", json=body).raise_for_status()
        body = {"lease_token": trial["lease_token"], "status": "completed", "metrics": {}}
        dashboard.api.post(f"/trials/{trial['id']}/finish", json=body).raise_for_status()
    open_sweep(page, dashboard.url, sweep["id"])
    expect(page.locator("#curve-metric option")).to_have_text(["nll", "top5"])
    lines = chart_series(page, "curves")
    assert len(lines) == 2 and all(line["count"] == 40 for line in lines)
    assert _option(page, "curves", "xAxis[0].name") == "step"
    assert trial_marks(page, "history") == 2

    page.goto(f"{dashboard.url}/#/trials/{claimed[0]['id']}")
    page.wait_for_selector("main[data-ready]")
    # No metric is called a loss: one chart draws them all, over every step reported.
    expect(page.locator("[data-chart='trial-loss']")).to_be_hidden()
    assert [(s["name"], s["count"]) for s in chart_series(page, "trial-metrics")] == [("nll", 40), ("top5", 40)]
    assert _option(page, "trial-metrics", "xAxis[0].name") == "step"
    settings = page.locator("#trial-settings")
    expect(settings.locator("tr[data-setting='batch_size'] td")).to_have_text("100")
    expect(settings.locator("tr[data-setting='epochs'] td")).to_have_text("2")
    expect(settings.locator("tr[data-setting='divergence_factor']")).to_have_count(0)


def _failed_or_diverged(dashboard: Dashboard, sweep: dict[str, Any]) -> int:
    counts = dashboard.sweep(sweep["id"])["counts"]
    return int(counts.get("failed", 0) + counts.get("diverged", 0))


def _option(page: Page, chart: str, path: str) -> Any:
    """A value from the ECharts option of ``[data-chart=chart]``, by a JavaScript path."""
    return page.evaluate(
        f"""(chart) => window.echarts.getInstanceByDom(document.querySelector(`[data-chart="${{chart}}"]`))
            .getOption().{path}""",
        chart,
    )


def _axis_type(page: Page, chart: str) -> str:
    kind: str = page.evaluate(
        """(chart) => window.echarts.getInstanceByDom(document.querySelector(`[data-chart="${chart}"]`))
            .getOption().xAxis[0].type""",
        chart,
    )
    return kind


def _row_ids(page: Page) -> list[int]:
    return [
        int(v or -1)
        for v in page.locator("#trials-table tbody tr").evaluate_all("(rows) => rows.map((r) => r.dataset.trialId)")
    ]


def _row_statuses(page: Page) -> set[str]:
    return set(page.locator("#trials-table tbody tr").evaluate_all("(rows) => rows.map((r) => r.dataset.status)"))
