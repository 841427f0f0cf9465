"""Fixtures for the dashboard's tests: headless Chromium driven by Playwright, and real
``hypersweep serve`` processes holding sweeps run by hand over the API.

Chromium is the system's (Debian's ``chromium`` package at ``/usr/bin/chromium``, or
``HYPERSWEEP_CHROMIUM``); Playwright never downloads a browser. Every wait is bounded by
the page's default timeout, and a JavaScript error on a page fails its test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import BACKENDS, _pg_admin, _pg_url, free_port
from tests.dashboard.synthetic import finish_trials, sweep_document

CHROMIUM = os.environ.get("HYPERSWEEP_CHROMIUM", "/usr/bin/chromium")
#: Bound on any one wait in a page (a chart drawn, a row shown, a live update).
PAGE_TIMEOUT_MS = 20_000
#: The finished sweep's stages: (trials, epochs).
FINISHED_STAGES = ((60, 3), (20, 6))
RUNNING_TRIALS, RUNNING_DONE = 30, 10


expect.set_options(timeout=PAGE_TIMEOUT_MS)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set HYPERSWEEP_CHROMIUM)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page (no stored token, nothing cached); fails the test on any uncaught
    JavaScript error."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    # Every error message the page shows, even one a later refresh clears.
    context.add_init_script(
        """window.errorsShown = [];
        new MutationObserver((records) => {
            for (const record of records)
                for (const node of record.addedNodes)
                    if (node.classList?.contains("error-box")) window.errorsShown.push(node.textContent);
        }).observe(document, { childList: true, subtree: true });"""
    )
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield tab
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@contextmanager
def serve(database_url: str, workdir: Path, **env_overrides: str) -> Iterator[str]:
    """A real ``hypersweep serve`` on ``database_url``; yields its URL."""
    port = free_port()
    env = {**os.environ, "HYPERSWEEP_DATABASE_URL": database_url}
    env.pop("HYPERSWEEP_TOKEN", None)
    env.update({f"HYPERSWEEP_{k.upper()}": v for k, v in env_overrides.items()})
    log = workdir / f"server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hypersweep", "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def fresh_database(backend: str, template: str, workdir: Path) -> Iterator[str]:
    """A copy of the migrated template database on ``backend``."""
    if backend == "sqlite":
        path = workdir / "dashboard.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    name = f"hs_dash_{uuid.uuid4().hex[:12]}"
    _pg_admin(f"CREATE DATABASE {name} TEMPLATE {template}")
    try:
        yield _pg_url(name)
    finally:
        _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class Dashboard:
    """A live server and what it holds: a finished two-stage sweep with completed,
    diverged and failed trials, and a running sweep with some trials finished."""

    url: str
    api: httpx.Client
    backend: str
    database_url: str
    finished: dict[str, Any]
    running: dict[str, Any]

    def sweep(self, sweep_id: int) -> dict[str, Any]:
        body: dict[str, Any] = self.api.get(f"/sweeps/{sweep_id}").raise_for_status().json()
        return body

    def trials(self, sweep_id: int, **params: Any) -> list[dict[str, Any]]:
        body: list[dict[str, Any]] = (
            self.api.get(f"/sweeps/{sweep_id}/trials", params={"limit": 1000, **params}).raise_for_status().json()
        )
        return body


def submit(api: httpx.Client, document: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = api.post("/sweeps", json=document).raise_for_status().json()
    return body


@pytest.fixture(scope="module", params=BACKENDS)
def dashboard(
    request: pytest.FixtureRequest, _templates: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dashboard]:
    """One server per backend for a module's tests, which only read what it holds."""
    backend = str(request.param)
    workdir = tmp_path_factory.mktemp(f"dashboard-{backend}")
    with (
        fresh_database(backend, _templates[backend], workdir) as url,
        serve(url, workdir) as base,
        httpx.Client(base_url=f"{base}/api/v1", timeout=30) as api,
    ):
        document = sweep_document("lr-reg-coarse-to-fine", trials=FINISHED_STAGES[0][0], epochs=FINISHED_STAGES[0][1])
        (trials, epochs), (fine_trials, fine_epochs) = FINISHED_STAGES
        document["stages"].append({"trials": fine_trials, "epochs": fine_epochs, "top_k": 5})
        finished = submit(api, document)
        finish_trials(api, finished["id"], trials, epochs=epochs)
        finish_trials(api, finished["id"], fine_trials, epochs=fine_epochs)
        running = submit(api, sweep_document("still-running", trials=RUNNING_TRIALS))
        finish_trials(api, running["id"], RUNNING_DONE)
        yield Dashboard(
            url=base,
            api=api,
            backend=backend,
            database_url=url,
            finished=api.get(f"/sweeps/{finished['id']}").json(),
            running=api.get(f"/sweeps/{running['id']}").json(),
        )


def chart_series(page: Page, chart: str) -> list[dict[str, Any]]:
    """The series the ECharts instance in ``[data-chart=chart]`` holds: id, name, number
    of data items, symbol, its points as [x, y] (a large series holds a flat typed array
    of x, y pairs), and its mark points."""
    series: list[dict[str, Any]] = page.evaluate(
        """(chart) => {
            const node = document.querySelector(`[data-chart="${chart}"]`);
            const instance = window.echarts.getInstanceByDom(node);
            const pairs = (data) => ArrayBuffer.isView(data)
                ? Array.from({ length: data.length / 2 }, (_, k) => [data[2 * k], data[2 * k + 1]])
                : Array.from(data, (item) => (Array.isArray(item) ? item : [item]));
            // A series removed by an update leaves a null in the option's list.
            return instance.getOption().series.filter(Boolean).map((s) => ({
                id: s.id, name: s.name, symbol: s.symbol || null, data: pairs(s.data),
                count: ArrayBuffer.isView(s.data) ? s.data.length / 2 : s.data.length,
                markPoint: s.markPoint ? s.markPoint.data : null,
            }));
        }""",
        chart,
    )
    return series


def trial_marks(page: Page, chart: str) -> int:
    """How many trials the chart draws: the data items of its ``trials:`` series."""
    return sum(s["count"] for s in chart_series(page, chart) if str(s["id"]).startswith("trials:"))


def open_sweep(page: Page, base: str, sweep_id: int) -> None:
    """Open a sweep's page and wait for its first full render, which must come without
    an error shown on the way."""
    page.goto(f"{base}/#/sweeps/{sweep_id}")
    page.wait_for_selector("main[data-ready]")
    assert page.evaluate("window.errorsShown") == []


def wait_for(page: Page, check: Callable[[], bool], what: str, timeout: float = PAGE_TIMEOUT_MS / 1000) -> None:
    """Poll a Python-side ``check`` (reading the page) until it holds; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {timeout:.0f} s")
        page.wait_for_timeout(100)
