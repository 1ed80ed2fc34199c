"""The unfamiliar-film signal: ``covidnet fit-familiarity`` fits it (and the lung-share cut) on the split,
``covidnet familiarity-report`` measures it on the films of a source never trained on against internal test films."""

from __future__ import annotations

import argparse
from pathlib import Path

from covidnet.cli.common import EXIT_OK, add_backbone_option, command_line, resolve_backbones
from covidnet.data.locations import DEFAULT_DATA, DEFAULT_SPLIT
from covidnet.errors import CovidNetError
from covidnet.models.checkpoints import default_weights_dir

DEFAULT_CACHE = Path("runs/familiarity")


def add(commands: argparse._SubParsersAction) -> None:
    """Register ``fit-familiarity`` and ``familiarity-report``."""
    from covidnet.training.familiarity_fitting import TRAIN_LIMIT

    fit = commands.add_parser(
        "fit-familiarity", help="fit the unfamiliar-film signal and the lung-share cut of trained backbones"
    )
    _common(fit)
    fit.add_argument("--limit", type=int, default=TRAIN_LIMIT, help="training films to fit on, at most (random draw)")
    fit.set_defaults(run=run_fit)

    report = commands.add_parser(
        "familiarity-report", help="measure the unfamiliar-film signal on a source never trained on"
    )
    _common(report)
    report.add_argument("--out", type=Path, default=default_weights_dir() / "reports" / "familiarity.json")
    report.add_argument(
        "--rounds",
        action="append",
        default=[],
        metavar="BACKBONE=DIR",
        help="leave-one-source-out rounds of BACKBONE's recipe, with their checkpoints (covidnet leave-one-out "
        "--folder DIR): each round's signal is fitted on its own films (written into its folder) and measured on the "
        "source it never trained on; repeatable",
    )
    report.set_defaults(run=run_report)


def _common(parser: argparse.ArgumentParser) -> None:
    add_backbone_option(parser)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split-file", type=Path, default=DEFAULT_SPLIT)
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help="features cached per checkpoint (a rerun resumes from it)"
    )


def _splits(args: argparse.Namespace) -> dict:
    from covidnet.data.records import read_metadata
    from covidnet.data.splits import split_records

    return split_records(read_metadata(args.data / "metadata.csv"), args.split_file)


def run_fit(args: argparse.Namespace) -> int:
    """Fit each chosen backbone's signal on the train split, its threshold and the lung-share cut on val (the split
    file each was trained with)."""
    from covidnet.inference.predictor import ungated_predictor
    from covidnet.training.familiarity_fitting import check_split_file, fit_from_splits

    folder = args.weights_dir or default_weights_dir()
    predictors = [
        ungated_predictor(name, folder, familiarity=False) for name in resolve_backbones(args.backbone, folder)
    ]
    for predictor in predictors:  # every one before any is refitted
        check_split_file(predictor.meta, args.split_file)
    parts = _splits(args)
    for predictor in predictors:
        meta = fit_from_splits(predictor, parts["train"], parts["val"], folder, args.cache, limit=args.limit)
        print(
            f"{predictor.backbone}: unfamiliar above distance {meta.familiarity.threshold:.3f}; lung-share warning "
            f"below {meta.thresholds.heatmap_in_lungs_below:.0%} ({meta.familiarity.fitted_on})"
        )
    return EXIT_OK


def run_report(args: argparse.Namespace) -> int:
    """Measure each chosen backbone's signal; write the report and record the verdict in the metadata."""
    from covidnet.assessment.familiarity_measure import RULE, measure_backbone, record_verdict
    from covidnet.assessment.familiarity_report import FamiliarityReport
    from covidnet.assessment.report_files import write_familiarity_report
    from covidnet.experiments.familiarity_rounds import measure_round, record_rounds, round_folders
    from covidnet.inference.predictor import ungated_predictor

    folder = args.weights_dir or default_weights_dir()
    parts = _splits(args)
    names = resolve_backbones(args.backbone, folder)
    recipes = dict(_rounds(spec, names) for spec in args.rounds)
    measured, rounds = {}, {}
    for name in names:
        predictor = ungated_predictor(name, folder, familiarity=True)
        result = measure_backbone(predictor, parts["test"], parts["external"], args.cache)
        record_verdict(result, predictor.backbone, folder)
        measured[predictor.backbone] = result
        print(f"{predictor.backbone}: {result.summary()}")
        if name in recipes:
            answered_at = predictor.meta.thresholds.uncertain_below
            rounds[name] = [
                measure_round(f, name, parts, args.split_file, args.cache, answered_at)
                for f in round_folders(recipes[name], name)
            ]
            record_rounds(rounds[name], name, folder)
            for r in rounds[name]:
                print(f"  round without {r.left_out}: {r.summary()}")
    report = FamiliarityReport(
        internal=f"internal test split of {args.split_file.name}",
        unseen=f"external split of {args.split_file.name} (ieee8023, never trained on)",
        backbones=measured,
        rule=RULE,
        command=command_line(),
        rounds=rounds,
    )
    write_familiarity_report(report, args.out)
    return EXIT_OK


def _rounds(spec: str, backbones: list[str]) -> tuple[str, Path]:
    """``BACKBONE=DIR`` → (backbone, DIR), for one of the backbones measured."""
    backbone, _, folder = spec.partition("=")
    if backbone not in backbones or not folder:
        raise CovidNetError(f"--rounds {spec!r}: expected BACKBONE=DIR for one of {', '.join(backbones)}.")
    return backbone, Path(folder)
