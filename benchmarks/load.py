"""Load: concurrent app sessions on the shared models. `python benchmarks/load.py [--sessions 8 --analyses 100]`.

Each session is a Streamlit AppTest in its own thread, uploading its own real scan and switching backbone,
CAM method and target so that every run is a real analysis (no cache hit). Every probability the app shows
must equal a sequential, single-threaded analysis of the same scan; the process's RSS is sampled to show
it stays bounded; the median and 95th-percentile latency of one run (upload or switch → page done) are
reported.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

import covidnet

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cxr" / "images"


def rss_mb() -> float:
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024


def shown_probabilities(at: AppTest) -> list[float]:
    """The probabilities in the page's bar chart, in class order."""
    charts = at.get("plotly_chart")
    if not charts:
        raise RuntimeError(f"no probabilities shown: {[e.value for e in at.error]} {[w.value for w in at.warning]}")
    figure = json.loads(charts[0].proto.spec)
    return [float(x) for x in figure["data"][0]["x"]]


def session(scan: Path, settings: list[tuple[str, str, str]], latencies: list[float], memory: list[float]) -> list:
    """One browser session: upload, then one analysis per (backbone, cam, target) setting."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    seen = []
    for k, (backbone, cam, target) in enumerate(settings):
        if k == 0:
            at.file_uploader[0].set_value((scan.name, scan.read_bytes(), "image/jpeg"))
        at.sidebar.selectbox[0].set_value(backbone)
        at.sidebar.selectbox[1].set_value(cam)
        at.sidebar.selectbox[2].set_value(target)
        started = time.perf_counter()
        at.run()
        latencies.append(time.perf_counter() - started)
        memory.append(rss_mb())
        if at.exception:
            raise RuntimeError(f"{scan.name}: {at.exception}")
        if not at.get("plotly_chart"):
            raise RuntimeError(f"{scan.name}, run {k} {backbone}/{cam}/{target}: page shows "
                               f"{[type(e).__name__ for e in at.main.children.values()]}")
        seen.append(((backbone, cam, target), shown_probabilities(at)))
    return seen


def run_load(sessions: int = 8, analyses: int = 100) -> dict:
    """Run the load; raise if any session saw another's result or an exception."""
    st.cache_resource.clear()
    st.cache_data.clear()
    scans = sorted(DATA.rglob("*.jpg"))[::997][:sessions]
    targets = ["The prediction", *(covidnet.display_name(c) for c in covidnet.CLASSES)]
    combos = list(itertools.product(covidnet.trained_backbones(), covidnet.cam_methods(), targets))
    per_session = -(-analyses // sessions)
    plans = [combos[k::sessions][:per_session] for k in range(sessions)]
    expected = {
        (scan.name, combo[0]): covidnet.load(combo[0]).predict(scan)
        for scan, plan in zip(scans, plans, strict=True)
        for combo in plan
    }
    latencies: list[float] = []
    memory = [rss_mb()]
    with ThreadPoolExecutor(max_workers=sessions) as pool:
        results = list(pool.map(session, scans, plans, [latencies] * sessions, [memory] * sessions))
    mismatches = [
        (scan.name, combo)
        for scan, seen in zip(scans, results, strict=True)
        for combo, shown in seen
        if any(abs(a - b) > 1e-6 for a, b in zip(shown, expected[(scan.name, combo[0])].values(), strict=True))
    ]
    if mismatches:
        raise AssertionError(f"sessions saw results that were not their own: {mismatches[:3]}")
    ordered = sorted(latencies)
    half = len(memory) // 2
    return {
        "sessions": sessions,
        "analyses": len(latencies),
        "median_seconds": statistics.median(ordered),
        "p95_seconds": ordered[int(0.95 * (len(ordered) - 1))],
        "rss_mb_start": memory[0],
        "rss_mb_after_half": max(memory[: half + 1]),
        "rss_mb_end": max(memory),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--analyses", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "load.json")
    args = parser.parse_args()
    if not covidnet.trained_backbones():
        sys.exit("no trained weights: set COVIDNET_WEIGHTS or train first")
    result = run_load(args.sessions, args.analyses)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{result['sessions']} sessions, {result['analyses']} analyses, all results their own: "
        f"median {result['median_seconds'] * 1e3:.0f} ms, p95 {result['p95_seconds'] * 1e3:.0f} ms; "
        f"RSS {result['rss_mb_start']:.0f} → {result['rss_mb_after_half']:.0f} → {result['rss_mb_end']:.0f} MB"
    )


if __name__ == "__main__":
    main()
