"""End to end in real headless Chromium: `streamlit run app.py`, upload a real scan on the Analyse and
Compare pages, wait for the charts and heatmaps, and fail on any exception element."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
from app_server import FLAGS, open_sidebar_page, serve_app

import covidnet
import ui

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
    backbones = covidnet.backbones()
    # The original scan and one heatmap per backbone; one chart with every backbone's bars and the ensemble's.
    page.wait_for_function(
        f"document.querySelectorAll('[data-testid=\"stImage\"]').length >= {len(backbones) + 1}", timeout=180_000
    )
    page.wait_for_selector('[data-testid="stPlotlyChart"]')
    page.wait_for_selector("text=Ensemble")
    for backbone in backbones:
        assert page.locator(f"text={backbone} —").count() == 1
    assert_no_exception(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "compare.png"), full_page=True)


# Each page's sidebar link and its heading, in the order of the navigation.
PAGES = {"Compare backbones": "Compare backbones", "Batch": "Batch analysis", "Model card": "Model card",
         "About": "About CovidNet"}  # fmt: skip


def test_no_page_asks_an_outside_host_and_each_shows_the_disclaimer_once(server, browser, real_scans):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(server, wait_until="networkidle")
    page.locator('input[type="file"]').first.set_input_files(str(real_scans[2]))
    page.wait_for_selector('[data-testid="stPlotlyChart"]', timeout=120_000)
    phrase = ui.DISCLAIMER.split("**")[1]  # "Research and teaching demo — not a medical device."
    finished = '[data-test-script-state="notRunning"]'  # the page's script has run to its end
    page.wait_for_selector(finished, timeout=60_000)
    shown = {"Analyse": page.inner_text("body").count(phrase)}
    for title, heading in PAGES.items():
        open_sidebar_page(page, title, heading=heading)
        page.wait_for_selector(finished, timeout=60_000)
        shown[title] = page.inner_text("body").count(phrase)
    assert_no_exception(page)
    assert shown == {title: 1 for title in ("Analyse", *PAGES)}
    local = urlparse(server).netloc
    assert any(urlparse(url).netloc == local for url in asked)  # the requests were recorded
    outside = {url for url in asked if urlparse(url).scheme in ("http", "https") and urlparse(url).netloc != local}
    assert sorted(outside) == []
    assert "What it is not" in page.inner_text("body")  # the About page was drawn to its end
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "about.png"), full_page=True)


def test_a_page_opened_by_its_url_on_a_fresh_server_shows_the_apps_own_navigation(weights_dir, browser):
    """Streamlit runs the first page opened by URL with its folder-based navigation (file names, no app.py frame)
    unless the page switches to app.py's; a fresh server, so no earlier visit to "/" has switched it already."""
    with serve_app(weights_dir) as (url, _pid):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/compare", wait_until="networkidle")
        page.get_by_role("heading", name="Compare backbones", exact=True).wait_for(timeout=60_000)
        navigation = page.locator('[data-testid="stSidebarNav"]')
        navigation.get_by_role("link", name="Compare backbones").wait_for(timeout=30_000)
        links = navigation.get_by_role("link").all_inner_texts()
        assert not {"app", "compare", "model card"} & {link.strip().lower() for link in links}, links
        page.close()
