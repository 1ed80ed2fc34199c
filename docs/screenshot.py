"""Make the README's screenshot of the Analyse page from the shipped weights (Debian's Chromium, headless):

    python docs/screenshot.py                     # writes docs/analyse.png

The scan is the bundled ieee8023 sample, a film from a source no shipped model trained on.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from app_server import CHROMIUM, FLAGS, serve_app  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from covidnet.io.samples import samples  # noqa: E402

SCAN = next(s for s in samples() if s.dataset == "ieee8023")
OUT = ROOT / "docs" / "analyse.png"


def main() -> None:
    with serve_app(None) as (url, _pid), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(url, wait_until="networkidle")
        page.wait_for_selector('[data-testid="stFileUploader"]', timeout=60_000)
        page.locator('input[type="file"]').first.set_input_files(str(SCAN.path))
        page.wait_for_selector('[data-testid="stPlotlyChart"]', timeout=180_000)
        page.wait_for_function("document.querySelectorAll('[data-testid=\"stImage\"] img').length >= 2")
        page.wait_for_timeout(1000)  # the chart's animation
        page.screenshot(path=str(OUT), full_page=True)
        browser.close()
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
