"""``covidnet predict``: classify scan files and folders, one row per scan and backbone (text or JSON)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from covidnet.classes import display_name
from covidnet.cli.common import EXIT_OK, EXIT_SCAN_FAILED, add_backbone_option, predictors
from covidnet.errors import CovidNetError
from covidnet.inference.cam import cam_methods
from covidnet.inference.predictor import Predictor
from covidnet.io.reading import SCAN_SUFFIXES, Scan, read_scan

PROGRESS_MIN_SCANS = 4


def add(commands: argparse._SubParsersAction) -> None:
    """Register ``predict``."""
    predict = commands.add_parser("predict", help="classify scans (files or folders)")
    predict.add_argument("scans", nargs="+", type=Path, metavar="SCAN_OR_DIR")
    add_backbone_option(predict)
    predict.add_argument("--cam", default=cam_methods()[0], choices=cam_methods(), help="heatmap method")
    predict.add_argument("--heatmaps", type=Path, metavar="DIR", help="write one overlay PNG per scan and backbone")
    predict.add_argument("--json", action="store_true", help="print one JSON object per line")
    predict.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Analyse every scan with every chosen backbone; exit 1 if any scan could not be read."""
    chosen = predictors(args.backbone, args.weights_dir)
    scans = list(_walk(args.scans))
    if not scans:
        raise CovidNetError("No scans found in " + ", ".join(map(str, args.scans)) + ".")
    if args.heatmaps:
        args.heatmaps.mkdir(parents=True, exist_ok=True)
    failed = False
    progress = tqdm(scans, unit="scan", file=sys.stderr, disable=len(scans) < PROGRESS_MIN_SCANS)
    for path in progress:
        try:
            scan = read_scan(path)
        except CovidNetError as e:
            failed = True
            _emit({"scan": str(path), "error": str(e)}, args.json)
            continue
        for predictor in chosen:
            _emit(_row(path, scan, predictor, args), args.json)
    return EXIT_SCAN_FAILED if failed else EXIT_OK


def _walk(paths: list[Path]) -> Iterator[Path]:
    """Files as given; folders walked for files with a scan suffix, in sorted order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SCAN_SUFFIXES)
        else:
            yield path


def _row(path: Path, scan: Scan, predictor: Predictor, args: argparse.Namespace) -> dict:
    analysis = predictor.analyze(scan, cam=args.cam if args.heatmaps else None)
    heatmap = None
    drawn = analysis.overlay()
    if drawn is not None:
        heatmap = args.heatmaps / f"{_safe_stem(path)}.{predictor.backbone}.{args.cam}.png"
        drawn.save(heatmap)
    return {"scan": str(path), **analysis.to_dict(), "heatmap": None if heatmap is None else str(heatmap)}


def _safe_stem(path: Path) -> str:
    """A file name built from the whole path, so scans with the same name do not overwrite."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(path.with_suffix("")).strip("/")).strip("_")


def _emit(row: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(row), flush=True)
    elif "error" in row:
        print(f"{row['scan']}: ERROR {row['error']}", flush=True)
    else:
        probs = "  ".join(f"{display_name(k)} {v:.3f}" for k, v in row["probabilities"].items())
        notes = "".join(f"  [{w['code']}]" for w in row["warnings"])
        print(f"{row['scan']}  {row['backbone']}: {display_name(row['prediction'])}  ({probs}){notes}", flush=True)
