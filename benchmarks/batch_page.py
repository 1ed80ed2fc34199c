"""The app's Batch page against the command line for the same work: 50 scans × every trained backbone, in
interleaved rounds. Writes benchmarks/batch_page.json.

    python benchmarks/batch_page.py [--scans 50] [--rounds 5]

- page: `streamlit.testing.v1.AppTest` runs the real app, opens the Batch page and uploads the scans; timed is
  the run after the upload (reading the uploads, scoring, the table and its CSV), in a fresh session each round,
  with the models already loaded (a warm-up round first), as on a running server;
- scoring: `covidnet.score` over the same files in this process, models loaded (the CLI's batched path), and
  with batch size 1 (one scan at a time: the work the page did before it was batched);
- cli: `covidnet predict DIR --backbone all --out rows.csv` as a new process (start-up and loading included).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import ROOT, medians, scans
from streamlit.testing.v1 import AppTest

import covidnet

TIMEOUT = 600


def page_work(files: list[tuple[str, bytes]], backbones: list[str]):
    def run_page() -> None:
        app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
        app.run()
        app.switch_page("pages/batch.py").run()
        app.file_uploader[0].set_value([(name, data, "image/jpeg") for name, data in files])
        started = time.perf_counter()
        app.run()
        page_seconds.append(time.perf_counter() - started)
        table = app.dataframe[0].value
        assert not app.exception and len(table) == len(files) * len(backbones), app.exception

    page_seconds: list[float] = []
    return run_page, page_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scans", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "batch_page.json")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="covidnet-batch-"))
    paths = scans(args.scans)
    for path in paths:
        shutil.copy(path, folder / path.name)
    files = [(p.name, p.read_bytes()) for p in paths]
    backbones = covidnet.trained_backbones()
    run_page, page_seconds = page_work(files, backbones)
    cli = [sys.executable, "-m", "covidnet", "predict", str(folder), "--backbone", "all"]

    def run_cli() -> None:
        out = folder.with_suffix(".csv")
        out.unlink(missing_ok=True)
        subprocess.run([*cli, "--out", str(out)], check=True, capture_output=True)

    before = os.getloadavg()[0]
    works = {
        "page_run": run_page,
        "scoring": lambda: list(covidnet.score(folder, backbones=backbones)),
        "one_at_a_time": lambda: list(covidnet.score(folder, backbones=backbones, batch_size=1)),
        "cli": run_cli,
    }
    seconds = medians(works, repeats=args.rounds, warmup=1)
    page = sorted(page_seconds[1:])[len(page_seconds[1:]) // 2]  # the upload's run alone, warm-up left out
    result = {
        "scans": len(files),
        "backbones": backbones,
        "rounds": args.rounds,
        "page_upload_run_seconds": page,
        "page_whole_session_seconds": seconds["page_run"],
        "scoring_seconds": seconds["scoring"],
        "one_at_a_time_seconds": seconds["one_at_a_time"],
        "cli_process_seconds": seconds["cli"],
        "page_over_scoring": page / seconds["scoring"],
        "page_over_cli_process": page / seconds["cli"],
        "load_average": [before, os.getloadavg()[0]],
    }
    shutil.rmtree(folder)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{len(files)} scans × {len(backbones)} backbones, medians of {args.rounds} rounds: Batch page "
          f"{page:.2f} s (after the upload; whole session {seconds['page_run']:.2f} s), covidnet.score "
          f"{seconds['scoring']:.2f} s ({result['page_over_scoring']:.2f}×), one scan at a time "
          f"{seconds['one_at_a_time']:.2f} s, covidnet predict process "
          f"{seconds['cli']:.2f} s ({result['page_over_cli_process']:.2f}×); load average {before:.1f} → "
          f"{result['load_average'][1]:.1f}")  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
