"""The chest X-ray gate: ``covidnet fit-gate`` fits it on the split, ``covidnet gate-report`` measures it on a
folder of images that are not chest X-rays (one subfolder per kind of image)."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from covidnet.assessment.gate_report import GateReport
from covidnet.assessment.report_files import write_gate_report
from covidnet.cli.common import EXIT_OK, add_backbone_option, command_line, predictors, resolve_backbones
from covidnet.data.locations import DEFAULT_DATA, DEFAULT_SPLIT
from covidnet.errors import CovidNetError
from covidnet.io.reading import SCAN_SUFFIXES, Scan, read_scan
from covidnet.models.checkpoints import default_weights_dir
from covidnet.provenance import recorded_path


def add(commands: argparse._SubParsersAction) -> None:
    """Register ``fit-gate`` and ``gate-report``."""
    gate = commands.add_parser("fit-gate", help="fit the chest X-ray gate of trained backbones on the split")
    add_backbone_option(gate)
    gate.add_argument("--data", type=Path, default=DEFAULT_DATA)
    gate.add_argument("--split-file", type=Path, default=DEFAULT_SPLIT)
    gate.add_argument(
        "--shared-from",
        default=None,
        metavar="NAME",
        help="give every backbone the gate of this one (fitted first) instead of its own",
    )
    gate.set_defaults(run=run_fit_gate)

    corpus = commands.add_parser("gate-report", help="measure the chest X-ray gate on 150+ images that are not X-rays")
    add_backbone_option(corpus)
    corpus.add_argument(
        "--corpus",
        type=Path,
        required=True,
        metavar="DIR",
        help="images that are not chest X-rays, one subfolder per kind (`python tests/gate_corpus.py DIR` writes one)",
    )
    corpus.add_argument(
        "--frontal",
        type=Path,
        default=DEFAULT_DATA / "metadata.csv",
        metavar="CSV",
        help="frontal chest X-rays (path,label CSV) to count the lung check's false alarms on",
    )
    corpus.add_argument("--out", type=Path, default=default_weights_dir() / "reports" / "gate.json")
    corpus.set_defaults(run=run_gate_report)


def run_fit_gate(args: argparse.Namespace) -> int:
    """Fit each chosen backbone's gate on the train split and threshold it on val (or share one backbone's)."""
    from covidnet.data.records import read_metadata
    from covidnet.data.splits import split_records
    from covidnet.inference.feature_gate import StageExtractor
    from covidnet.inference.gate import Gate
    from covidnet.inference.predictor import Predictor, installed_segmenter, load_classifier
    from covidnet.models.registry import get_spec
    from covidnet.training.gate_fitting import fit_from_splits, share_gate

    folder = args.weights_dir or default_weights_dir()
    names = resolve_backbones(args.backbone, folder)
    parts = split_records(read_metadata(args.data / "metadata.csv"), args.split_file)

    def without_gate(name: str) -> Predictor:
        """The backbone with a gate that records its stages and has no fitted check yet."""
        classifier = load_classifier(name, folder)
        stages = StageExtractor(classifier.network, get_spec(name).gate_layers, name)
        return Predictor(classifier, Gate(stages=stages), segmenter=installed_segmenter(folder))

    if args.shared_from:
        keeper = fit_from_splits(without_gate(args.shared_from), parts["train"], parts["val"], folder)
        for name in [n for n in names if n != args.shared_from]:
            share_gate(keeper, name, folder)
            print(f"{name}: uses the gate of {args.shared_from}")
        return EXIT_OK
    for name in names:
        predictor = without_gate(name)  # without any earlier gate
        meta = fit_from_splits(predictor, parts["train"], parts["val"], folder)
        print(f"{predictor.backbone}: gate threshold {meta.gate.threshold:.1f} (fitted on {meta.gate.fitted_on})")
    return EXIT_OK


def run_gate_report(args: argparse.Namespace) -> int:
    """Count, per chosen backbone and kind of image, the corpus images the gate flags; write the report JSON."""
    chosen = predictors(args.backbone, args.weights_dir)
    corpus = read_corpus(args.corpus)
    kinds = Counter(kind for kind, _, _ in corpus)
    report = {"n": len(corpus), "kinds": dict(kinds), "backbones": {}, "command": command_line()}
    for predictor in chosen:
        flagged = Counter(kind for kind, _, scan in corpus if predictor.analyze(scan, cam=None).flagged)
        report["backbones"][predictor.backbone] = {
            "gate_fitted": predictor.gate.fitted,
            "gate_of": predictor.gate.stages.backbone if predictor.gate.stages else predictor.backbone,
            "flagged_share": sum(flagged.values()) / len(corpus),
            "flagged_share_by_kind": {kind: flagged[kind] / n for kind, n in kinds.items()},
        }
        print(
            f"{predictor.backbone}: flagged {sum(flagged.values())} of {len(corpus)} images that are not chest X-rays"
        )
    report["lung_check"] = _lung_check(args, [scan for _, _, scan in corpus])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_gate_report(GateReport.from_dict(report), args.out)
    return EXIT_OK


def _lung_check(args: argparse.Namespace, corpus: list[Scan]) -> dict | None:
    """The lung check alone, on the corpus and on the frontal X-rays of ``args.frontal`` (None without a segmenter
    or without that file)."""
    from covidnet.assessment.lung_check import lung_check_counts
    from covidnet.data.records import read_metadata
    from covidnet.inference.predictor import installed_segmenter

    segmenter = installed_segmenter(args.weights_dir or default_weights_dir())
    if segmenter is None or not args.frontal.exists():
        return None
    records = read_metadata(args.frontal)
    frontal = lung_check_counts(segmenter, (read_scan(r.path) for r in records), len(records))
    flagged = frontal["no_lung_fields"] + frontal["lateral_view"]
    print(f"lung check: {flagged} of {frontal['n']} frontal chest X-rays flagged ({flagged / frontal['n']:.2%})")
    return {
        "frontal_data": recorded_path(args.frontal),
        "frontal": frontal,
        "corpus": lung_check_counts(segmenter, corpus),
    }


def read_corpus(folder: Path) -> list[tuple[str, str, Scan]]:
    """(kind, name, scan) for every scan file in ``folder``'s subfolders; the kind is the subfolder's name.

    Kinds and files come in sorted order. ``CovidNetError`` if there is no such folder or no scan in it.
    """
    if not folder.is_dir():
        raise CovidNetError(f"No corpus folder {str(folder)!r}. Write one with `python tests/gate_corpus.py DIR`.")
    corpus = [
        (kind.name, path.stem, read_scan(path))
        for kind in sorted(p for p in folder.iterdir() if p.is_dir())
        for path in sorted(kind.iterdir())
        if path.is_file() and path.suffix.lower() in SCAN_SUFFIXES
    ]
    if not corpus:
        raise CovidNetError(f"No images in the subfolders of {str(folder)!r} (one subfolder per kind of image).")
    return corpus
