"""The ``covidnet`` argument parser: the global options, and each command registered by its own module."""

from __future__ import annotations

import argparse
from pathlib import Path

from covidnet.cli import data, evaluate, familiarity, gate, listing, lungs, model_card, predict, train, uncertain
from covidnet.models.checkpoints import default_weights_dir

COMMAND_MODULES = (listing, predict, data, train, lungs, evaluate, uncertain, gate, familiarity, model_card)


def build_parser() -> argparse.ArgumentParser:
    """The parser; each parsed command carries its ``run(args) -> exit status`` as ``args.run``."""
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
    for module in COMMAND_MODULES:
        module.add(commands)
    return parser
