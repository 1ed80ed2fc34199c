"""The command-line interface: ``covidnet backbones`` and ``covidnet predict``.

Exit status: 0 when every scan was analysed, 1 when any scan could not be read, 2 for usage errors
(including a backbone without trained weights).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from tqdm import tqdm

from covidnet.classes import CLASSES, display_name
from covidnet.errors import CheckpointError, CovidNetError
from covidnet.inference.cam import cam_methods
from covidnet.inference.predictor import Predictor, load
from covidnet.io.reading import SCAN_SUFFIXES, Scan, read_scan
from covidnet.models.checkpoints import default_weights_dir, load_checkpoint, trained_backbones, verify_checkpoint
from covidnet.models.registry import backbones, get_spec

EXIT_OK, EXIT_SCAN_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_DATA = Path("../shared/data/cxr")
DEFAULT_SPLIT = default_weights_dir() / "split.csv"
# ieee8023 via this repository: COVID-19, pneumonia and normal images from many hospitals and papers.
EXTERNAL_SOURCE = "GeneralBlockchain/covid-19-chest-xray-lung-bounding-boxes-dataset"
PROGRESS_MIN_SCANS = 4


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except CovidNetError as e:
        print(f"covidnet: {e}", file=sys.stderr)
        return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="covidnet",
        description="Chest X-ray classification with Grad-CAM. A research demo, not a medical device.",
    )
    parser.add_argument(
        "--weights-dir",
        type=Path,
        default=None,
        help=f"folder of trained checkpoints (default: $COVIDNET_WEIGHTS or {default_weights_dir()})",
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    listing = commands.add_parser("backbones", help="list backbones and whether trained weights are present")
    listing.set_defaults(run=_run_backbones)

    predict = commands.add_parser("predict", help="classify scans (files or folders)")
    predict.add_argument("scans", nargs="+", type=Path, metavar="SCAN_OR_DIR")
    predict.add_argument("--backbone", default="all", help="a backbone name, or 'all' (default)")
    predict.add_argument("--cam", default=cam_methods()[0], choices=cam_methods(), help="heatmap method")
    predict.add_argument("--heatmaps", type=Path, metavar="DIR", help="write one overlay PNG per scan and backbone")
    predict.add_argument("--json", action="store_true", help="print one JSON object per line")
    predict.set_defaults(run=_run_predict)

    split = commands.add_parser("split", help="de-duplicate and split a data set by patient (writes the split file)")
    split.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help=f"folder with metadata.csv (default {DEFAULT_DATA})"
    )
    split.add_argument(
        "--external",
        nargs="*",
        default=[EXTERNAL_SOURCE],
        metavar="SOURCE",
        help="sources held out whole as the external test set",
    )
    split.add_argument("--seed", type=int, default=0)
    split.add_argument(
        "--fresh",
        action="store_true",
        help="split everything anew (default: keep every image already in --out, place only new ones)",
    )
    split.add_argument("--out", type=Path, default=DEFAULT_SPLIT)
    split.set_defaults(run=_run_split)

    train = commands.add_parser("train", help="train one backbone and write its checkpoint and metadata")
    train.add_argument("--backbone", required=True, choices=backbones())
    train.add_argument("--data", type=Path, default=DEFAULT_DATA)
    train.add_argument("--split-file", type=Path, default=DEFAULT_SPLIT)
    train.add_argument("--epochs", type=int, default=12)
    train.add_argument(
        "--init", default="scratch", help="scratch, imagenet (from TORCH_HOME's cache), or a weights folder"
    )
    train.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--input-size", type=int, default=None)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--workers", type=int, default=1)
    train.add_argument("--patience", type=int, default=4)
    train.add_argument("--limit", type=int, default=None, help="use every n-th image only (quick runs)")
    train.add_argument("--resume", action="store_true", help="continue from runs/<backbone>.state.pt")
    train.add_argument("--out", type=Path, default=default_weights_dir())
    train.set_defaults(run=_run_train)

    evaluate = commands.add_parser("evaluate", help="measure trained backbones on a labelled CSV (path,label)")
    evaluate.add_argument("--metadata", type=Path, required=True, help="CSV with columns path,label")
    evaluate.add_argument(
        "--root", type=Path, default=None, help="folder the paths are relative to (default: the CSV's)"
    )
    evaluate.add_argument("--backbone", default="all", help="a backbone name, or 'all' with weights (default)")
    evaluate.add_argument("--split", default=None, help="evaluate only this split of --split-file (by sha256)")
    evaluate.add_argument("--split-file", type=Path, default=DEFAULT_SPLIT)
    evaluate.add_argument("--no-shortcuts", dest="shortcuts", action="store_false", help="skip shortcut checks")
    evaluate.add_argument("--out", type=Path, required=True, help="report JSON to write")
    evaluate.set_defaults(run=_run_evaluate)

    gate = commands.add_parser("fit-gate", help="fit the chest X-ray gate of trained backbones on the split")
    gate.add_argument("--backbone", default="all", help="a backbone name, or 'all' with weights (default)")
    gate.add_argument("--data", type=Path, default=DEFAULT_DATA)
    gate.add_argument("--split-file", type=Path, default=DEFAULT_SPLIT)
    gate.add_argument(
        "--shared-from",
        default=None,
        metavar="NAME",
        help="give every backbone the gate of this one (fitted first) instead of its own",
    )
    gate.set_defaults(run=_run_fit_gate)

    corpus = commands.add_parser("gate-report", help="measure the chest X-ray gate on 150+ images that are not X-rays")
    corpus.add_argument("--backbone", default="all", help="a backbone name, or 'all' with weights (default)")
    corpus.add_argument("--out", type=Path, default=default_weights_dir() / "reports" / "gate.json")
    corpus.set_defaults(run=_run_gate_report)

    meta = commands.add_parser("model-card", help="generate docs/model_card.md and the README table from the reports")
    meta.add_argument("--reports", type=Path, default=default_weights_dir() / "reports")
    meta.add_argument("--data", type=Path, default=DEFAULT_DATA)
    meta.add_argument("--split-file", type=Path, default=DEFAULT_SPLIT)
    meta.add_argument("--out", type=Path, default=Path("docs/model_card.md"))
    meta.add_argument("--readme", type=Path, default=Path("README.md"))
    meta.set_defaults(run=_run_model_card)
    return parser


def _run_backbones(args: argparse.Namespace) -> int:
    for name in backbones():
        try:
            meta = verify_checkpoint(name, args.weights_dir)
            state = f"trained weights present, sha256 ok ({meta.sha256[:12]}…, input {meta.input_size}px)"
        except CheckpointError as e:
            state = f"no usable weights: {e}"
        print(f"{name:<14} {get_spec(name).family:<9} {state}")
    return EXIT_OK


def _run_predict(args: argparse.Namespace) -> int:
    predictors = _predictors(args.backbone, args.weights_dir)
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
        for predictor in predictors:
            _emit(_row(path, scan, predictor, args), args.json)
    return EXIT_SCAN_FAILED if failed else EXIT_OK


def _run_split(args: argparse.Namespace) -> int:
    from covidnet.training.data import read_metadata
    from covidnet.training.splits import (
        SPLITS,
        assign_splits,
        extend_splits,
        perceptual_hash,
        read_split_file,
        write_split_file,
    )

    records = read_metadata(args.data / "metadata.csv")
    earlier = {} if args.fresh or not args.out.exists() else read_split_file(args.out)
    hashes = [
        earlier[r.sha256].phash if r.sha256 in earlier else perceptual_hash(r.path)
        for r in tqdm(records, desc="hashing", unit="scan", file=sys.stderr)
    ]
    if earlier:
        kept = {sha: entry.split for sha, entry in earlier.items()}
        split = extend_splits(records, hashes, kept, external_sources=args.external, seed=args.seed)
        new_round = max(entry.round for entry in earlier.values()) + 1
        rounds = [earlier[r.sha256].round if r.sha256 in earlier else new_round for r in records]
    else:
        split = assign_splits(records, hashes, external_sources=args.external, seed=args.seed)
        rounds = [1] * len(records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_split_file(args.out, records, hashes, split, rounds)
    for name in SPLITS:
        chosen = [(r, n) for r, s, n in zip(records, split, rounds, strict=True) if s == name]
        by_class = ", ".join(f"{c} {sum(r.label == c for r, _ in chosen)}" for c in CLASSES)
        added = sum(n == max(rounds) for _, n in chosen) if max(rounds) > 1 else 0
        print(f"{name:<9} {len(chosen):>5}  ({by_class})" + (f"  {added} new" if added else ""))
    return EXIT_OK


def _run_train(args: argparse.Namespace) -> int:
    from covidnet.training.train import TrainConfig, train

    settings = {k: v for k, v in vars(args).items() if k not in ("run", "weights_dir")}
    meta = train(TrainConfig(**settings), command="covidnet " + " ".join(sys.argv[1:]))
    print(f"wrote {meta.backbone}: validation {meta.metrics['validation']}, temperature {meta.temperature:.3f}")
    return EXIT_OK


def _run_evaluate(args: argparse.Namespace) -> int:
    from covidnet.assessment.evaluate import evaluate
    from covidnet.training.data import read_metadata
    from covidnet.training.train import split_records

    records = read_metadata(args.metadata, root=args.root)
    data = f"{args.metadata}"
    if args.split:
        records = split_records(records, args.split_file).get(args.split, [])
        data += f", split {args.split!r} of {args.split_file}"
    if not records:
        raise CovidNetError(f"No images to evaluate in {data}.")
    names = [p.backbone for p in _predictors(args.backbone, args.weights_dir)]
    report = evaluate(records, backbones=names, data=data, weights_dir=args.weights_dir, shortcuts=args.shortcuts)
    report["command"] = "covidnet " + " ".join(sys.argv[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for name, metrics in {**report["backbones"], "ensemble": report["ensemble"]}.items():
        auc, acc = metrics["macro_auc"], metrics["accuracy"]
        print(f"{name:<12} n={report['n']}  macro AUC {_fmt(auc)}  accuracy {_fmt(acc)}")
    print(f"unreadable: {report['unreadable']['count']}; report: {args.out}")
    return EXIT_OK


def _run_fit_gate(args: argparse.Namespace) -> int:
    from covidnet.training.data import read_metadata
    from covidnet.training.gate_fitting import fit_from_splits, share_gate
    from covidnet.training.train import split_records

    parts = split_records(read_metadata(args.data / "metadata.csv"), args.split_file)
    folder = args.weights_dir or default_weights_dir()
    names = backbones() if args.backbone == "all" else [get_spec(args.backbone).name]
    trained = trained_backbones(folder)
    if args.shared_from:
        keeper = fit_from_splits(
            Predictor(*load_checkpoint(args.shared_from, folder)), parts["train"], parts["val"], folder
        )
        for name in [n for n in names if n in trained and n != args.shared_from]:
            share_gate(keeper, name, folder)
            print(f"{name}: uses the gate of {args.shared_from}")
        return EXIT_OK
    for name in names:
        if name not in trained:
            print(f"covidnet: skipping {name}: no trained weights", file=sys.stderr)
            continue
        predictor = Predictor(*load_checkpoint(name, folder))  # without any earlier gate
        meta = fit_from_splits(predictor, parts["train"], parts["val"], folder)
        print(f"{predictor.backbone}: gate threshold {meta.gate['threshold']:.1f} (fitted on {meta.gate['fitted_on']})")
    return EXIT_OK


def _run_gate_report(args: argparse.Namespace) -> int:
    from collections import Counter

    from gate_corpus import non_xray_scans

    from covidnet.inference.gate import CODE

    corpus = non_xray_scans()
    kinds = Counter(kind for kind, _, _ in corpus)
    report = {"n": len(corpus), "kinds": dict(kinds), "backbones": {}, "command": "covidnet " + " ".join(sys.argv[1:])}
    for predictor in _predictors(args.backbone, args.weights_dir):
        flagged = Counter(
            kind
            for kind, _, scan in corpus
            if any(w["code"] == CODE for w in predictor.analyze(scan, cam=None).warnings)
        )
        report["backbones"][predictor.backbone] = {
            "gate_fitted": predictor.gate is not None,
            "gate_of": predictor.gatekeeper.backbone if predictor.gatekeeper else predictor.backbone,
            "flagged_share": sum(flagged.values()) / len(corpus),
            "flagged_share_by_kind": {kind: flagged[kind] / n for kind, n in kinds.items()},
        }
        print(
            f"{predictor.backbone}: flagged {sum(flagged.values())} of {len(corpus)} images that are not chest X-rays"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    return EXIT_OK


def _run_model_card(args: argparse.Namespace) -> int:
    from covidnet.assessment.model_card import write_model_card

    weights = args.weights_dir or default_weights_dir()
    write_model_card(args.reports, weights, args.data / "metadata.csv", args.split_file, args.out, args.readme)
    print(f"wrote {args.out} and the results table in {args.readme}")
    return EXIT_OK


def _fmt(metric: dict) -> str:
    if metric["value"] is None:
        return "n/a"
    return f"{metric['value']:.3f} [{metric['low']:.3f}, {metric['high']:.3f}]"


def _predictors(choice: str, weights_dir: Path | None) -> list[Predictor]:
    if choice != "all":
        get_spec(choice)
        return [load(choice, weights_dir=weights_dir)]
    predictors = []
    for name in backbones():
        try:
            predictors.append(load(name, weights_dir=weights_dir))
        except CheckpointError as e:
            print(f"covidnet: skipping {name}: {e}", file=sys.stderr)
    if not predictors:
        raise CheckpointError(
            "No backbone has trained weights, so there is nothing meaningful to predict with. "
            "Train one with `covidnet train --backbone NAME`."
        )
    return predictors


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
    return {
        "scan": str(path),
        "backbone": predictor.backbone,
        "probabilities": analysis.probabilities,
        "prediction": analysis.prediction,
        "heatmap": None if heatmap is None else str(heatmap),
        "warnings": analysis.warnings,
    }


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
