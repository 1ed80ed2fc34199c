"""``covidnet backbones``: list every registered backbone and the state of its trained weights."""

from __future__ import annotations

import argparse

from covidnet.cli.common import EXIT_OK
from covidnet.errors import CheckpointError
from covidnet.models.checkpoints import verify_checkpoint
from covidnet.models.registry import backbones, get_spec


def add(commands: argparse._SubParsersAction) -> None:
    """Register ``backbones``."""
    listing = commands.add_parser("backbones", help="list backbones and whether trained weights are present")
    listing.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print one line per backbone: name, family, and whether its weights are present and verified."""
    for name in backbones():
        try:
            meta = verify_checkpoint(name, args.weights_dir)
            state = f"trained weights present, sha256 ok ({meta.sha256[:12]}…, input {meta.input_size}px)"
        except CheckpointError as e:
            state = f"no usable weights: {e}"
        print(f"{name:<14} {get_spec(name).family:<9} {state}")
    return EXIT_OK
