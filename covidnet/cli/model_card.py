"""``covidnet model-card``: generate docs/model_card.md and the README's results table from the reports."""

from __future__ import annotations

import argparse
from pathlib import Path

from covidnet.cli.common import EXIT_OK
from covidnet.data.locations import DEFAULT_DATA, DEFAULT_SPLIT
from covidnet.models.checkpoints import default_weights_dir


def add(commands: argparse._SubParsersAction) -> None:
    """Register ``model-card``."""
    meta = commands.add_parser("model-card", help="generate docs/model_card.md and the README table from the reports")
    meta.add_argument("--reports", type=Path, default=default_weights_dir() / "reports")
    meta.add_argument("--data", type=Path, default=DEFAULT_DATA)
    meta.add_argument("--split-file", type=Path, default=DEFAULT_SPLIT)
    meta.add_argument("--out", type=Path, default=Path("docs/model_card.md"))
    meta.add_argument("--readme", type=Path, default=Path("README.md"))
    meta.add_argument(
        "--previous",
        type=Path,
        default=None,
        metavar="DIR",
        help="the previous release's reports: the card then shows old and new models side by side",
    )
    meta.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write the model card and the README table."""
    from covidnet.assessment.model_card import write_model_card

    weights = args.weights_dir or default_weights_dir()
    write_model_card(
        args.reports, weights, args.data / "metadata.csv", args.split_file, args.out, args.readme, args.previous
    )
    print(f"wrote {args.out} and the results table in {args.readme}")
    return EXIT_OK
