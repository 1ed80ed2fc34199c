"""Memory of batched scoring over a long listing: the RSS of a `covidnet predict` process while it scores 10,000
scans (a CSV listing that cycles through a few hundred real scans) into Parquet. Writes
benchmarks/scoring_memory.json.

    python benchmarks/scoring_memory.py [--scans 10000] [--distinct 300] [--backbone resnet18]

The process is sampled from outside every half second: its RSS (/proc/PID/status) and how many scans it has
scored (each Parquet part is one block of --batch-size scans). Flat means: once the models are loaded and the
first blocks are done, the RSS does not grow with the number of scans scored.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import ROOT, scans

sys.path.insert(0, str(ROOT / "tests"))
from app_server import rss_mb

from covidnet.scoring.pipeline import DEFAULT_BATCH_SIZE

SAMPLE_SECONDS = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scans", type=int, default=10_000)
    parser.add_argument("--distinct", type=int, default=300, help="real scans the listing cycles through")
    parser.add_argument("--backbone", default="resnet18", help="a backbone, or 'all'")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "scoring_memory.json")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="covidnet-memory-"))
    files = scans(args.distinct)
    listing, rows = folder / "listing.csv", folder / "rows.parquet"
    listing.write_text("path\n" + "".join(f"{files[k % len(files)]}\n" for k in range(args.scans)))
    command = [sys.executable, "-m", "covidnet", "predict", str(listing), "--backbone", args.backbone,
               "--out", str(rows)]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
    samples: list[tuple[float, int, float]] = []  # (seconds, scans scored, RSS MB)
    while process.poll() is None:
        try:
            rss = rss_mb(process.pid)
        except (FileNotFoundError, IndexError):  # the process ended between poll and read
            break
        parts = len(list(rows.glob("*.parquet"))) if rows.exists() else 0
        samples.append((time.perf_counter() - started, parts * DEFAULT_BATCH_SIZE, rss))
        time.sleep(SAMPLE_SECONDS)
    process.wait()
    seconds = time.perf_counter() - started
    scoring = [(n, r) for _, n, r in samples if n > 0]
    second_half = [(n, r) for n, r in scoring if n > args.scans // 2]
    slope = statistics.linear_regression([n for n, _ in second_half], [r for _, r in second_half]).slope
    result = {
        "command": f"covidnet predict LISTING.csv --backbone {args.backbone} --out ROWS.parquet (batch size "
        f"{DEFAULT_BATCH_SIZE})",
        "scans": args.scans,
        "distinct_files": len(files),
        "exit_status": process.returncode,
        "seconds_with_start_up": seconds,
        "rss_first_block_mb": scoring[0][1],
        "rss_at_a_tenth_mb": next(r for n, r in scoring if n >= args.scans // 10),
        "rss_at_half_mb": next(r for n, r in scoring if n >= args.scans // 2),
        "rss_last_sample_mb": scoring[-1][1],
        "rss_max_mb": max(r for _, r in scoring),
        "rss_growth_per_1000_scans_second_half_mb": slope * 1000,
        "load_average": os.getloadavg()[0],
        "samples_seconds_scans_rss_mb": samples[:: max(1, len(samples) // 200)],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(folder)
    print(f"{args.scans} scans ({len(files)} distinct files) in {seconds:.0f} s with start-up; RSS "
          f"{result['rss_first_block_mb']:.0f} MB after the first block, {result['rss_at_a_tenth_mb']:.0f} MB at a "
          f"tenth of the scans, {result['rss_at_half_mb']:.0f} MB at half, {result['rss_last_sample_mb']:.0f} MB at "
          f"the end, max {result['rss_max_mb']:.0f} MB; growth over the second half "
          f"{result['rss_growth_per_1000_scans_second_half_mb']:+.2f} MB per 1,000 scans")  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
