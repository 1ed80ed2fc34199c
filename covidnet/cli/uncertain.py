"""``covidnet calibrate-uncertain``: choose each model's "uncertain" threshold on films from sources it never
trained on, check it on the other half of them, record it in the metadata and write ``reports/uncertain.json``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from covidnet.cli.common import EXIT_OK, command_line
from covidnet.errors import CovidNetError
from covidnet.models.checkpoints import default_weights_dir

if TYPE_CHECKING:  # imported where used, so the CLI starts fast
    from covidnet.assessment.evaluation_report import EvaluationReport
    from covidnet.assessment.films import Films


def add(commands: argparse._SubParsersAction) -> None:
    """Register ``calibrate-uncertain``."""
    reports = default_weights_dir() / "reports"
    command = commands.add_parser(
        "calibrate-uncertain", help="choose the 'uncertain' thresholds on films from sources the models never saw"
    )
    command.add_argument(
        "--unseen",
        type=Path,
        default=reports / "external.json",
        help="an evaluation report on a source no model trained on (default: the external report)",
    )
    command.add_argument(
        "--rounds",
        action="append",
        default=[],
        metavar="BACKBONE=DIR",
        help="leave-one-source-out rounds of BACKBONE's recipe: each DIR/*/left_out.json (the round's model on the "
        "source it never saw) adds its films to BACKBONE's unseen films; repeatable",
    )
    command.add_argument("--internal", type=Path, default=reports / "internal_test.json")
    command.add_argument("--out", type=Path, default=reports / "uncertain.json")
    command.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Calibrate every backbone of the unseen report and the ensemble; print and record the thresholds."""
    from covidnet.assessment.report_files import read_report, write_uncertain_report
    from covidnet.assessment.thresholds import BOUND_CONFIDENCE, MAX_WRONG_ANSWERED
    from covidnet.assessment.uncertain_report import ENSEMBLE, Agreement, UncertainReport, calibrate, record_thresholds

    unseen, internal = read_report(args.unseen), read_report(args.internal)
    if unseen.films is None or internal.films is None:
        raise CovidNetError("These reports hold no per-film probabilities: rerun `covidnet evaluate` to write them.")
    rounds = dict(_rounds(spec) for spec in args.rounds)
    models = {}
    own = ", ".join(sorted(set(unseen.films.origins)))
    for name in [*unseen.backbones, ENSEMBLE]:
        parts = [(unseen.films, name)]
        described = f"{own} (this model's own answers)"
        if name in rounds:
            folder, round_reports = rounds[name]
            parts += [(r.films, next(iter(r.backbones))) for r in round_reports]
            sources = sorted({o for r in round_reports for o in r.films.origins})
            described += f"; {', '.join(sources)} (leave-one-source-out rounds of its recipe, {folder})"
        elif name == ENSEMBLE and set(unseen.backbones) <= set(rounds):
            members_rounds = _ensemble_rounds({b: rounds[b][1] for b in unseen.backbones})
            parts += [(films, ENSEMBLE) for films in members_rounds]
            sources = sorted({o for films in members_rounds for o in films.origins})
            described += f"; {', '.join(sources)} (the mean of the members' leave-one-source-out rounds)"
        sha = unseen.backbones[name].weights_sha256 if name in unseen.backbones else None
        models[name] = calibrate(parts, (internal.films, name), described_as=described, weights_sha256=sha)
    agreement = Agreement.of(unseen.films, own) if len(unseen.backbones) > 1 else None
    report = UncertainReport(
        MAX_WRONG_ANSWERED, models, agreement, command=command_line(), bound_confidence=BOUND_CONFIDENCE
    )
    write_uncertain_report(report, args.out)
    for name, m in models.items():
        print(
            f"{name:<12} uncertain below {m.threshold:.2f}: on the check half ({m.checked.n} films) "
            f"{m.checked.answered:.0%} answered, {m.checked.wrong_answered:.1%} answered and wrong"
        )
    recorded = record_thresholds(report, args.weights_dir or default_weights_dir())
    print(f"recorded thresholds in the metadata of: {', '.join(recorded) or 'none'}; report: {args.out}")
    return EXIT_OK


def _rounds(spec: str) -> tuple[str, tuple[str, list]]:
    """``BACKBONE=DIR`` → (backbone, (DIR, the rounds' left-out reports))."""
    from covidnet.assessment.report_files import read_report

    backbone, _, folder = spec.partition("=")
    paths = sorted(Path(folder).glob("*/left_out.json"))
    if not backbone or not paths:
        raise CovidNetError(f"--rounds {spec!r}: expected BACKBONE=DIR with DIR/*/left_out.json reports.")
    reports = [read_report(p) for p in paths]
    if any(r.films is None for r in reports):
        raise CovidNetError(f"The round reports in {folder} hold no per-film probabilities: rerun their evaluation.")
    return backbone, (folder, reports)


def _ensemble_rounds(rounds: dict[str, list[EvaluationReport]]) -> list[Films]:
    """The ensemble's unseen-source films from its members' rounds: for each source left out in every member's
    rounds, those films with each member's round model's probabilities (their mean is the ensemble's)."""
    from covidnet.assessment.films import joined

    by_source = {
        b: {frozenset(r.films.origins): (r.films, next(iter(r.backbones))) for r in reports}
        for b, reports in rounds.items()
    }
    common = set.intersection(*(set(sources) for sources in by_source.values()))
    return [joined({b: by_source[b][source] for b in by_source}) for source in sorted(common, key=sorted)]
