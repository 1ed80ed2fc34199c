"""Memory of the real app server: `streamlit run app.py` driven by headless Chromium through the Analyse page
and a full Compare run (every trained backbone loaded and run), with this machine's torch build and, if given,
a CPU-only build's interpreter. Writes benchmarks/app_memory.json.

    python benchmarks/app_memory.py [--cpu-python /path/to/cpu-venv/bin/python]

torchvision's PyPI wheels are built against CUDA torch: next to a CPU-only torch their compiled operators do
not load and `import torchvision` stops while registering fake kernels for two of them (nms, qnms). For the CPU
measurement, `benchmarks/cpu_torch_shim/sitecustomize.py` declares those two operator schemas so that the
pure-Python model definitions import; CovidNet never calls those operators. On Streamlit Community Cloud the
matching CPU wheels of torch and torchvision (see the README's Deploy section) need no shim.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from load import ROOT

sys.path.insert(0, str(ROOT / "tests"))
from app_server import CHROMIUM, FLAGS, open_sidebar_page, rss_mb, serve_app

SHIM = Path(__file__).resolve().parent / "cpu_torch_shim"
SCAN = ROOT / "covidnet" / "sample_scans"
COMMUNITY_CLOUD_MB = 690
TIMEOUT_MS = 300_000


def peak_rss_mb(pid: int) -> float:
    """The highest resident memory process ``pid`` has had, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def torch_version(python: str, env: dict) -> str:
    import os
    import subprocess

    code = "import torch, torchvision; print(torch.__version__, torchvision.__version__)"
    return subprocess.run([python, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def measure(python: str, env: dict, scan: Path, backbones: int) -> dict:
    """RSS of one app server: idle, after an Analyse upload, after a Compare upload, and its peak."""
    from playwright.sync_api import sync_playwright

    with serve_app(python=python, env=env) as (url, pid), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, wait_until="networkidle")
        page.wait_for_selector('[data-testid="stFileUploader"]', timeout=TIMEOUT_MS)
        after_start = rss_mb(pid)
        page.locator('input[type="file"]').first.set_input_files(str(scan))
        page.wait_for_selector('[data-testid="stPlotlyChart"]', timeout=TIMEOUT_MS)
        after_analyse = rss_mb(pid)
        open_sidebar_page(page, "Compare backbones", TIMEOUT_MS)
        page.wait_for_function("document.querySelectorAll('input[type=file]').length >= 1", timeout=TIMEOUT_MS)
        page.locator('input[type="file"]').first.set_input_files(str(scan))
        page.wait_for_function(
            f"document.querySelectorAll('[data-testid=\"stPlotlyChart\"]').length >= {backbones}", timeout=TIMEOUT_MS
        )
        page.wait_for_selector("text=Ensemble:", timeout=TIMEOUT_MS)
        if page.locator('[data-testid="stException"]').count():
            raise AssertionError("the app showed an exception")
        time.sleep(1)
        result = {
            "torch": torch_version(python, env),
            "rss_mb_first_page": after_start,
            "rss_mb_after_analyse": after_analyse,
            "rss_mb_after_compare": rss_mb(pid),
            "peak_rss_mb": peak_rss_mb(pid),
        }
        browser.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu-python", help="python of a venv with a CPU-only torch and the app's requirements")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "app_memory.json")
    args = parser.parse_args()

    import covidnet

    scan = sorted(SCAN.glob("*.jpg"))[0]
    backbones = len(covidnet.trained_backbones())
    builds = {"this_build": (sys.executable, {})}
    if args.cpu_python:
        builds["cpu_build"] = (args.cpu_python, {"PYTHONPATH": str(SHIM)})
    result = {"scan": scan.name, "backbones": backbones, "limit_mb": COMMUNITY_CLOUD_MB}
    for label, (python, env) in builds.items():
        result[label] = measure(python, env, scan, backbones)
        row = result[label]
        print(f"{label} ({row['torch']}): first page {row['rss_mb_first_page']:.0f} MB, after Analyse "
              f"{row['rss_mb_after_analyse']:.0f} MB, after Compare {row['rss_mb_after_compare']:.0f} MB, "
              f"peak {row['peak_rss_mb']:.0f} MB (limit {COMMUNITY_CLOUD_MB} MB)")  # fmt: skip
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
