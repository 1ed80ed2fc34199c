"""``covidnet predict``: score scans (files, folders, globs, listings) in batches, one row per scan and backbone.

Rows go to stdout (text, or JSON lines with ``--json``) or to ``--out FILE`` (JSON lines, CSV or Parquet, written
in flushed blocks; ``--resume`` continues it). ``--engine ray`` runs the same scoring on a Ray cluster.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from covidnet.assessment.unseen_facts import ensemble_threshold
from covidnet.classes import display_name
from covidnet.cli.common import EXIT_OK, EXIT_SCAN_FAILED, add_backbone_option, resolve_backbones
from covidnet.errors import CovidNetError
from covidnet.inference.cam import cam_methods
from covidnet.inference.predictor import load
from covidnet.scoring.inputs import scan_paths
from covidnet.scoring.outputs import Finished, finished, open_output
from covidnet.scoring.pipeline import DEFAULT_BATCH_SIZE, score_blocks

PROGRESS_MIN_SCANS = 4


def add(commands: argparse._SubParsersAction) -> None:
    """Register ``predict``."""
    predict = commands.add_parser("predict", help="classify scans (files, folders, globs or listings)")
    predict.add_argument(
        "scans", nargs="+", metavar="SCAN", help="scan files, folders, glob patterns, or CSV/Parquet listings "
        "with a 'path' column (relative paths are relative to the listing)"
    )  # fmt: skip
    add_backbone_option(predict)
    predict.add_argument("--cam", default=cam_methods()[0], choices=cam_methods(), help="heatmap method")
    predict.add_argument("--heatmaps", type=Path, metavar="DIR", help="write one overlay PNG per scan and backbone")
    predict.add_argument("--json", action="store_true", help="print one JSON object per line (without --out)")
    predict.add_argument(
        "--out", type=Path, metavar="FILE", help="write the rows to FILE: .jsonl, .csv or .parquet (a folder of parts)"
    )
    predict.add_argument("--resume", action="store_true", help="skip the scans --out already holds; append the rest")
    predict.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N",
        help=f"scans per forward pass (default {DEFAULT_BATCH_SIZE}; 1: one scan at a time, no reading threads)",
    )  # fmt: skip
    predict.add_argument("--workers", type=int, metavar="N", help="threads reading scans (default: one per CPU)")
    predict.add_argument(
        "--engine", choices=("local", "ray"), default="local",
        help="local: this machine; ray: Ray Data on the cluster at $RAY_ADDRESS (or a local one), needs --out "
        "FILE.parquet and `pip install \"covidnet[ray]\"`",
    )  # fmt: skip
    predict.add_argument("--actors", type=int, metavar="N", help="ray: model actors (default: from the cluster's CPUs)")
    predict.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Score every scan with every chosen backbone; exit 1 if any scan could not be read."""
    if args.resume and args.out is None:
        raise CovidNetError("--resume continues an output file: give it with --out FILE.")
    names = resolve_backbones(args.backbone, args.weights_dir)
    paths = scan_paths(args.scans)
    if not paths:
        raise CovidNetError("No scans found in " + ", ".join(map(str, args.scans)) + ".")
    if args.engine == "ray":
        from covidnet.scoring.ray_engine import score_with_ray

        errors = score_with_ray(args.scans, names, args.out, batch_size=args.batch_size, cam=args.cam,
                                heatmaps=args.heatmaps, weights_dir=args.weights_dir, actors=args.actors,
                                resume=args.resume)  # fmt: skip
        return EXIT_SCAN_FAILED if errors else EXIT_OK
    return _score_locally(args, names, paths)


def _score_locally(args: argparse.Namespace, names: list[str], paths: list[str]) -> int:
    predictors = [load(name, weights_dir=args.weights_dir) for name in names]
    done = finished(args.out) if args.resume else Finished()
    pending = [(path, path) for path in paths if not done.complete(path, names)]
    output = open_output(args.out, resume=args.resume) if args.out is not None else None
    progress = tqdm(total=len(pending), unit="scan", file=sys.stderr, disable=len(pending) < PROGRESS_MIN_SCANS)
    failed = False
    try:
        below = ensemble_threshold(names, args.weights_dir) if len(names) > 1 else None
        blocks = score_blocks(pending, predictors, batch_size=args.batch_size, cam=args.cam, heatmaps=args.heatmaps,
                              workers=args.workers, done=done, ensemble_below=below)  # fmt: skip
        for block in blocks:
            rows = [result.row() for result in block.results]
            failed = failed or any("error" in row for row in rows)
            if output is None:
                for row in rows:
                    _emit(row, args.json)
            else:
                output.write(rows)
            progress.update(block.scans)
    finally:
        progress.close()
        if output is not None:
            output.close()
    if output is not None:
        print(f"covidnet: {len(pending)} scans scored into {args.out} ({len(paths) - len(pending)} were there)",
              file=sys.stderr)  # fmt: skip
    return EXIT_SCAN_FAILED if failed else EXIT_OK


def _emit(row: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(row), flush=True)
    elif "error" in row:
        print(f"{row['scan']}: ERROR {row['error']}", flush=True)
    else:
        notes = "".join(f"  [{w['code']}]" for w in row["warnings"])
        if row["flagged"]:
            print(f"{row['scan']}  {row['backbone']}: no class, refused by the gate{notes}", flush=True)
            return
        probs = "  ".join(f"{display_name(k)} {v:.3f}" for k, v in row["probabilities"].items())
        print(f"{row['scan']}  {row['backbone']}: {display_name(row['prediction'])}  ({probs}){notes}", flush=True)
