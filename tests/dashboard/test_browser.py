"""The dashboard in headless Chromium: pages render, a run's progress updates live, images load.

Needs Debian's chromium (`.ci/chromium.sh` installs it) and the playwright package; the
browser is the system's, never one that playwright downloads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import Engine

from tests.api.conftest import StudyTree
from tests.api.run_states import claim, report_epoch, succeed

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("PTYCHOJOBS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} missing: run .ci/chromium.sh"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    """A fresh browser tab; closed before the server stops (its event streams end first)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield page
    context.close()
    assert errors == [], errors  # no script error, no failed request


def submit(server: str, study: StudyTree, **body: Any) -> int:
    response = httpx.post(f"{server}/runs", json=study.body(**body), timeout=30)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def image_loaded(page: Page, selector: str) -> None:
    expect(page.locator(selector)).to_be_visible()
    page.wait_for_function(  # a figure is drawn on request: allow a loaded machine its time
        "s => { const i = document.querySelector(s); return i?.complete && i.naturalWidth > 0 }",
        arg=selector,
        timeout=60_000,
    )


def test_the_runs_page_lists_runs_with_links(
    page: Page, server: str, engine: Engine, study: StudyTree
) -> None:
    submit(server, study, filters={"dose": 1000.0})
    submit(server, study, dry_run=True)

    page.goto(f"{server}/")  # the service's home is the dashboard

    rows = page.get_by_test_id("run-row")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("run 2")
    expect(rows.first.get_by_test_id("status")).to_have_text("dry_run")
    expect(rows.nth(1).get_by_test_id("status")).to_have_text("queued")
    rows.nth(1).get_by_role("link", name="run 1").click()
    expect(page).to_have_url(f"{server}/ui/runs/1")


def test_the_run_page_follows_progress_live(
    page: Page, server: str, engine: Engine, study: StudyTree
) -> None:
    run_id = submit(server, study, filters={"dose": 1000.0}, training={"epochs": 3})
    page.goto(f"{server}/ui/runs/{run_id}")
    cells = page.get_by_test_id("job-cell")
    expect(cells).to_have_count(2)
    expect(page.get_by_test_id("skip-cell")).to_contain_text("not found")
    expect(cells.first.get_by_test_id("epoch")).to_have_text("epoch 0/3")
    expect(page.get_by_test_id("live")).to_have_text("live")

    first = claim(engine)
    report_epoch(engine, first, epoch=2, epochs=3, loss=0.5)

    expect(cells.first.get_by_test_id("epoch")).to_have_text("epoch 2/3")
    expect(cells.first.get_by_test_id("status")).to_have_text("running")
    expect(cells.first).to_contain_text("loss 0.5")
    expect(cells.first.get_by_test_id("eta")).to_contain_text("ETA")

    succeed(engine, first, epochs=3, phase_ssim=0.61)
    second = claim(engine)
    succeed(engine, second, epochs=3)

    expect(cells.nth(1).get_by_test_id("status")).to_have_text("succeeded")
    expect(cells.first).to_contain_text("0.61")
    # Both models' phase MAE is the flat object's: each cell and the header say so in words.
    expect(cells.first.get_by_test_id("verdict")).to_have_text("no better than flat")
    expect(cells.nth(1).get_by_test_id("verdict")).to_have_text("no better than flat")
    expect(page.get_by_test_id("run-verdicts")).to_contain_text("2 no better than flat")
    expect(page.get_by_test_id("live")).to_have_text("run ended")
    expect(page.get_by_test_id("run-header").get_by_test_id("status")).to_have_text("succeeded")
    image_loaded(page, "[data-testid=report-figure]")


def test_the_job_page_shows_curves_reconstruction_metrics_and_log(
    page: Page, server: str, engine: Engine, study: StudyTree
) -> None:
    submit(server, study, filters={"dose": 1000.0}, training={"epochs": 2})
    job = claim(engine, executor="slurm")
    report_epoch(engine, job, epoch=1, epochs=2, loss=0.5)
    report_epoch(engine, job, epoch=2, epochs=2, loss=0.25)
    losses = {"flat_val_loss": 0.6, "reference_val_loss": 0.1}
    succeed(engine, job, epochs=2, result=losses)

    page.goto(f"{server}/ui/jobs/{job.job_id}")

    expect(page.get_by_test_id("job-header")).to_contain_text("view baseline")
    expect(page.get_by_test_id("job-epoch")).to_have_text("epoch 2/2")
    expect(page.get_by_test_id("job-executor")).to_have_text("on slurm")
    chart = page.get_by_test_id("loss-chart")
    expect(chart.locator("circle")).to_have_count(4)  # train and val loss, two epochs
    expect(chart).to_contain_text("val_loss")
    expect(chart.get_by_test_id("ref-flat-label")).to_have_text(
        "flat object (no learning): val loss 0.6"
    )
    expect(chart.get_by_test_id("ref-truth-label")).to_have_text("ground truth: val loss 0.1")
    image_loaded(page, "[data-testid=reconstruction]")
    expect(page.get_by_test_id("metrics-table").locator("tbody tr")).to_have_count(9)
    expect(page.get_by_test_id("metrics-table")).to_contain_text("phase ssim")
    expect(page.get_by_test_id("metrics-table")).to_contain_text("flat object (no learning)")
    expect(page.get_by_test_id("job-verdict")).to_have_text("no better than flat")
    expect(page.get_by_test_id("log")).to_contain_text("epoch 2/2 train_loss=0.25")


def test_swagger_ui_and_redoc_render_from_packaged_assets(page: Page, server: str) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    page.goto(f"{server}/docs")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    expect(page.locator(".swagger-ui")).to_contain_text("/runs/{run_id}/events")
    page.goto(f"{server}/redoc")
    expect(page.get_by_text("Follow a run as server-sent events").first).to_be_visible()

    foreign = [url for url in requested if not url.startswith((server, "data:", "blob:"))]
    assert foreign == []  # nothing from a CDN: the docs work on an offline cluster
