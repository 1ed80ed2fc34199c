"""``covidnet evaluate``: measure trained backbones (and their ensemble) on a labelled CSV; write the report."""

from __future__ import annotations

import argparse
from pathlib import Path

from covidnet.cli.common import EXIT_OK, add_backbone_option, command_line, fmt, resolve_backbones
from covidnet.data.locations import DEFAULT_SPLIT
from covidnet.errors import CovidNetError
from covidnet.provenance import recorded_path


def add(commands: argparse._SubParsersAction) -> None:
    """Register ``evaluate``."""
    evaluate = commands.add_parser("evaluate", help="measure trained backbones on a labelled CSV (path,label)")
    evaluate.add_argument("--metadata", type=Path, required=True, help="CSV with columns path,label")
    evaluate.add_argument(
        "--root", type=Path, default=None, help="folder the paths are relative to (default: the CSV's)"
    )
    add_backbone_option(evaluate)
    evaluate.add_argument(
        "--split",
        default=None,
        help="evaluate only this split of --split-file (by sha256), and record its metrics in each checkpoint's "
        "metadata JSON",
    )
    evaluate.add_argument("--split-file", type=Path, default=DEFAULT_SPLIT)
    evaluate.add_argument("--no-shortcuts", dest="shortcuts", action="store_false", help="skip shortcut checks")
    evaluate.add_argument(
        "--reuse-checks",
        type=Path,
        default=None,
        metavar="REPORT",
        help="take the shortcut checks of backbones that this earlier report measured with the same weights on the "
        "same films, instead of measuring them again",
    )
    evaluate.add_argument("--out", type=Path, required=True, help="report JSON to write")
    evaluate.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate, write the report JSON and print macro AUC and accuracy per backbone and for the ensemble.

    A split of the split file (``--split``) also records the report's headline metrics in each measured
    checkpoint's metadata (``record_in_metadata``).
    """
    from dataclasses import asdict, replace

    from covidnet.assessment.archives import archives_beside
    from covidnet.assessment.evaluate import evaluate, record_in_metadata
    from covidnet.assessment.report_files import read_report, write_report
    from covidnet.assessment.report_schema import REPORT_NAMES
    from covidnet.data.records import read_metadata
    from covidnet.data.splits import split_records

    records = read_metadata(args.metadata, root=args.root)
    data = recorded_path(args.metadata)
    if args.split:
        records = split_records(records, args.split_file).get(args.split, [])
        data += f", split {args.split!r} of {recorded_path(args.split_file)}"
    if not records:
        raise CovidNetError(f"No images to evaluate in {data}.")
    names = resolve_backbones(args.backbone, args.weights_dir)
    archives = archives_beside(args.metadata, root=args.root)
    earlier = read_report(args.reuse_checks) if args.reuse_checks else None
    report = evaluate(
        records,
        backbones=names,
        data=data,
        weights_dir=args.weights_dir,
        shortcuts=args.shortcuts,
        archives=archives,
        earlier=earlier,
    )
    write_report(replace(report, command=command_line()), args.out)
    report = read_report(args.out)
    for name, metrics in report.models().items():
        auc, acc = asdict(metrics.macro_auc), asdict(metrics.accuracy)
        print(f"{name:<12} n={report.n}  macro AUC {fmt(auc)}  accuracy {fmt(acc)}")
        for archive, m in (metrics.covid_vs_pneumonia_auc_by_archive or {}).items():
            print(
                f"{'':<12} {archive} ({m.n_covid} COVID-19 / {m.n_pneumonia} pneumonia): COVID-19 vs pneumonia AUC "
                f"{fmt(asdict(m.auc))}"
            )
    print(f"unreadable: {report.unreadable.count}; report: {args.out}")
    if args.split in REPORT_NAMES:
        entry = REPORT_NAMES[args.split]
        recorded = record_in_metadata(report, entry, args.weights_dir)
        print(f"recorded metrics.{entry} in the metadata of: {', '.join(recorded) or 'none'}")
    return EXIT_OK
