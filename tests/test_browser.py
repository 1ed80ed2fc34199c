"""End to end in real headless Chromium: `streamlit run app.py`, upload a real scan on the Analyse and
Compare pages, wait for the charts and heatmaps, and fail on any exception element."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import covidnet

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = Path(os.environ.get("COVIDNET_SCREENSHOTS", ROOT / "runs" / "screenshots"))

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(weights_dir):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: .ci/run installs it")
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    port = free_port()
    env = {**os.environ, "COVIDNET_WEIGHTS": str(weights_dir)}
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true"]  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("streamlit did not start within 60 s")
    yield url
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
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
    page.get_by_role("link", name="Compare backbones").click()
    page.wait_for_selector("text=Compare backbones >> nth=-1")
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
