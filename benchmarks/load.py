"""Load: concurrent headless-Chromium sessions against one `streamlit run app.py`.

One session's first upload loads the model (the first user's wait, reported apart). Then every session opens
the Analyse page in its own browser context (its own Streamlit session) and uploads its own real scans one after
another, all sessions at once. For every upload it records the latency (upload → the scan's result on screen)
and downloads the JSON report, which must equal what a sequential `covidnet.load(...).analyze(...)` in this
process gives for the same file. The server's RSS is sampled throughout. Writes benchmarks/load.json.

    python benchmarks/load.py [--sessions 8] [--scans-per-session 13]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the app server and browser settings the browser tests use too
from app_server import CHROMIUM, FLAGS, rss_mb, serve_app  # noqa: E402

REPORT_BUTTON = "Download report (JSON)"
TOLERANCE = 1e-6  # probabilities of the app's report vs a sequential run in this process


@dataclass(frozen=True)
class Upload:
    """One analysis seen by one browser session."""

    session: int
    scan: str
    seconds: float
    report: dict


async def _session(browser, url: str, index: int, scans: list[Path], timeout_ms: int) -> list[Upload]:
    context = await browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    await page.goto(url, wait_until="networkidle")
    await page.wait_for_selector('[data-testid="stFileUploader"]', timeout=timeout_ms)
    uploads = []
    for scan in scans:
        start = time.perf_counter()
        await page.locator('input[type="file"]').first.set_input_files(str(scan))
        # The scan's caption is drawn only after its analysis has been computed.
        await page.get_by_text(f"{scan.name} (").wait_for(timeout=timeout_ms)
        seconds = time.perf_counter() - start
        report = await _report_of(page, scan.name, timeout_ms)
        if await page.locator('[data-testid="stException"]').count():
            raise AssertionError(f"session {index}: exception shown for {scan.name}")
        uploads.append(Upload(index, scan.name, seconds, report))
    await context.close()
    return uploads


async def _report_of(page, name: str, timeout_ms: int) -> dict:
    """The JSON report for ``name``, waiting out a report button left from the previous scan (a download from
    a button that a rerun replaces is cancelled by the browser: try again)."""
    from playwright.async_api import Error

    deadline = time.perf_counter() + timeout_ms / 1000
    while True:
        try:
            async with page.expect_download(timeout=timeout_ms) as info:
                await page.get_by_role("button", name=REPORT_BUTTON).click(timeout=timeout_ms)
            report = json.loads(Path(await (await info.value).path()).read_text())
        except Error:
            if time.perf_counter() > deadline:
                raise
            report = {"file": None}
        if report["file"] == name or time.perf_counter() > deadline:
            return report
        await asyncio.sleep(0.2)


async def _sample_rss(pid: int, samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        samples.append(rss_mb(pid))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def _drive(url: str, pid: int, work: list[list[Path]], timeout_ms: int) -> tuple[list[Upload], list[float]]:
    from playwright.async_api import async_playwright

    samples: list[float] = []
    stop = asyncio.Event()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        sampler = asyncio.create_task(_sample_rss(pid, samples, stop))
        try:
            done = await asyncio.gather(*(_session(browser, url, i, scans, timeout_ms) for i, scans in enumerate(work)))
        finally:
            stop.set()
            await sampler
            await browser.close()
    return [u for session in done for u in session], samples


def run_load(url: str, pid: int, work: list[list[Path]], timeout_ms: int = 120_000) -> tuple[list[Upload], list[float]]:
    """Run every session's scans concurrently (one browser session per list); returns uploads and RSS samples."""
    return asyncio.run(_drive(url, pid, work, timeout_ms))


def mismatches(uploads: list[Upload], expected: dict[str, dict[str, float]]) -> list[str]:
    """The uploads whose report differs from the sequential run's probabilities for the same scan."""
    wrong = []
    for upload in uploads:
        got, want = upload.report["probabilities"], expected[upload.scan]
        if upload.report["file"] != upload.scan or any(abs(got[c] - want[c]) > TOLERANCE for c in want):
            wrong.append(f"session {upload.session}, {upload.scan}: got {upload.report['file']} {got}, want {want}")
    return wrong


def ungated_scans(count: int, backbone: str, weights_dir: Path | None = None) -> dict[Path, dict[str, float]]:
    """``count`` internal-test scans the gate passes, with their probabilities from a sequential run."""
    import covidnet
    from covidnet.data.records import read_metadata
    from covidnet.data.splits import split_records

    metadata = read_metadata(ROOT.parent / "shared" / "data" / "cxr" / "metadata.csv")
    test = split_records(metadata, ROOT / "weights" / "split.csv")["test"]
    model = covidnet.load(backbone, weights_dir=weights_dir)
    chosen: dict[Path, dict[str, float]] = {}
    for record in test:
        if len(chosen) == count:
            break
        result = model.analyze(record.path)
        if not result.warnings:
            chosen[record.path] = result.probabilities
    return chosen


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--scans-per-session", type=int, default=13)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "load.json")
    args = parser.parse_args()

    import covidnet

    backbone = covidnet.default_backbone(covidnet.trained_backbones())  # the Analyse page's default
    expected = ungated_scans(args.sessions * args.scans_per_session + 1, backbone)
    warm_up, *paths = list(expected)
    work = [paths[i :: args.sessions] for i in range(args.sessions)]
    with serve_app() as (url, pid):
        idle = rss_mb(pid)
        (cold,), _ = run_load(url, pid, [[warm_up]])  # loads the model: the first user's wait
        uploads, samples = run_load(url, pid, work)
    wrong = mismatches([cold, *uploads], {p.name: v for p, v in expected.items()})
    latencies = [u.seconds for u in uploads]
    half = len(samples) // 2
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "backbone": backbone,
        "sessions": args.sessions,
        "analyses": len(uploads),
        "mismatches": wrong,
        "cold_first_result_seconds": cold.seconds,
        "latency_seconds": {
            "median": statistics.median(latencies),
            "p95": percentile(latencies, 0.95),
            "max": max(latencies),
        },
        "server_rss_mb": {
            "idle": idle,
            "peak": max(samples),
            "peak_first_half": max(samples[:half]),
            "peak_second_half": max(samples[half:]),
            "last": samples[-1],
        },
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    lat, rss = result["latency_seconds"], result["server_rss_mb"]
    print(f"{len(uploads)} analyses in {args.sessions} concurrent sessions ({backbone}); "
          f"{len(wrong)} differ from the sequential run")  # fmt: skip
    print(f"first result after start (one session, model loaded on demand): {cold.seconds:.2f} s")
    print(f"latency upload → result: median {lat['median']:.2f} s, p95 {lat['p95']:.2f} s, max {lat['max']:.2f} s")
    print(f"server RSS: idle {rss['idle']:.0f} MB, peak first half {rss['peak_first_half']:.0f} MB, "
          f"peak second half {rss['peak_second_half']:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
