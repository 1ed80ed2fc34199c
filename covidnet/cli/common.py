"""What the commands share: exit codes, the one ``--backbone`` option and its resolver, and small formatters.

Exit status: 0 when every scan was analysed, 1 when any scan could not be read, 2 for usage errors
(including a backbone without trained weights).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from covidnet.errors import CheckpointError
from covidnet.inference.predictor import Predictor, load
from covidnet.models.checkpoints import verify_checkpoint
from covidnet.models.registry import backbones, get_spec
from covidnet.provenance import recorded_path

EXIT_OK, EXIT_SCAN_FAILED, EXIT_USAGE = 0, 1, 2
ALL = "all"
BACKBONE_HELP = (
    "a backbone name, or 'all' (default): every registered backbone with verified trained weights, "
    "the others skipped with a message"
)


def add_backbone_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--backbone NAME|all`` with the same meaning and help text in every command that takes it."""
    parser.add_argument("--backbone", default=ALL, help=BACKBONE_HELP)


def resolve_backbones(choice: str, weights_dir: Path | None) -> list[str]:
    """The backbones ``--backbone choice`` names.

    A name is checked against the registry only (loading it later says if it has no weights). ``all`` is
    every registered backbone whose checkpoint passes verification; each other one is skipped with
    ``covidnet: skipping NAME: REASON`` on stderr. ``CheckpointError`` (a usage error) if none is left.
    """
    if choice != ALL:
        return [get_spec(choice).name]
    names = []
    for name in backbones():
        try:
            verify_checkpoint(name, weights_dir)
        except CheckpointError as e:
            print(f"covidnet: skipping {name}: {e}", file=sys.stderr)
            continue
        names.append(name)
    if not names:
        raise CheckpointError(
            "No backbone has trained weights, so there is nothing meaningful to predict with. "
            "Train one with `covidnet train --backbone NAME`."
        )
    return names


def predictors(choice: str, weights_dir: Path | None) -> list[Predictor]:
    """The shared predictors of the backbones ``--backbone choice`` names (see ``resolve_backbones``)."""
    return [load(name, weights_dir=weights_dir) for name in resolve_backbones(choice, weights_dir)]


def command_line() -> str:
    """This run's command, as reports record it (absolute paths made relative to the repository)."""
    return "covidnet " + " ".join(recorded_path(a) if os.path.isabs(a) else a for a in sys.argv[1:])


def fmt(metric: dict) -> str:
    """A metric with its interval, e.g. ``0.978 [0.972, 0.984]``, or ``n/a``."""
    if metric["value"] is None:
        return "n/a"
    return f"{metric['value']:.3f} [{metric['low']:.3f}, {metric['high']:.3f}]"
