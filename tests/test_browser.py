"""End to end in real headless Chromium: `streamlit run app.py`, upload a real scan on the Analyse and
Compare pages, wait for the charts and heatmaps, and fail on any exception element."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from app_server import FLAGS, open_sidebar_page, serve_app

import covidnet

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = Path(os.environ.get("COVIDNET_SCREENSHOTS", ROOT / "runs" / "screenshots"))

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(weights_dir, chromium):
    with serve_app(weights_dir) as (url, _pid):
        yield url


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium, args=FLAGS)
        yield instance
        instance.close()


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url, wait_until="networkidle")
    page.wait_for_selector('[data-testid="stFileUploader"]', timeout=60_000)
    return page


def assert_no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0


def test_analyse_page_shows_chart_and_heatmap_for_an_uploaded_scan(server, browser, real_scans):
    page = open_page(browser, server)
    page.locator('input[type="file"]').first.set_input_files(str(real_scans[0]))
    page.wait_for_selector('[data-testid="stPlotlyChart"]', timeout=120_000)
    page.wait_for_function("document.querySelectorAll('[data-testid=\"stImage\"] img').length >= 2", timeout=60_000)
    assert_no_exception(page)
    assert "not a medical device" in page.content()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "analyse.png"), full_page=True)


def test_compare_page_shows_every_backbone(server, browser, real_scans):
    page = open_page(browser, server)
    open_sidebar_page(page, "Compare backbones")
    page.wait_for_function("document.querySelectorAll('input[type=file]').length >= 1")
    page.locator('input[type="file"]').first.set_input_files(str(real_scans[1]))
    expected = len(covidnet.backbones())
    page.wait_for_function(
        f"document.querySelectorAll('[data-testid=\"stPlotlyChart\"]').length >= {expected}", timeout=180_000
    )
    page.wait_for_selector("text=Ensemble:")
    assert_no_exception(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "compare.png"), full_page=True)
