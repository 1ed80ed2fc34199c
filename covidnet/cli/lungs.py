"""``covidnet train-lungs``: train the lung segmenter and write ``lungs.pt``, ``lungs.json`` and its split."""

from __future__ import annotations

import argparse
from pathlib import Path

from covidnet.cli.common import EXIT_OK, command_line
from covidnet.lungs.data import DEFAULT_LUNG_DATA, DEFAULT_PATIENT_METADATA
from covidnet.models.checkpoints import default_weights_dir


def add(commands: argparse._SubParsersAction) -> None:
    """Register ``train-lungs``."""
    lungs = commands.add_parser(
        "train-lungs", help="train the lung segmenter from scratch and write lungs.pt and lungs.json"
    )
    lungs.add_argument("--data", type=Path, default=DEFAULT_LUNG_DATA, help="the lung mask set (metadata.csv)")
    lungs.add_argument(
        "--patient-metadata",
        type=Path,
        default=DEFAULT_PATIENT_METADATA,
        help="a metadata.csv with ieee8023 patient ids, to group the split by patient",
    )
    lungs.add_argument("--epochs", type=int, default=40)
    lungs.add_argument("--input-size", type=int, default=64, help="square input side (a multiple of 8)")
    lungs.add_argument("--base", type=int, default=16, help="channels of the U-Net's first level")
    lungs.add_argument("--batch-size", type=int, default=16)
    lungs.add_argument("--lr", type=float, default=3e-3)
    lungs.add_argument("--seed", type=int, default=0)
    lungs.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    lungs.add_argument("--limit", type=int, default=None, help="train on the first N images only (smoke tests)")
    lungs.add_argument("--resume", action="store_true", help="continue from runs/lungs.state.pt")
    lungs.add_argument("--state-dir", type=Path, default=Path("runs"))
    lungs.add_argument("--out", type=Path, default=default_weights_dir())
    lungs.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train with the flags as the configuration; print the validation Dice and latency."""
    from covidnet.lungs.train import LungTrainConfig, train_lungs

    settings = {k: v for k, v in vars(args).items() if k not in ("run", "weights_dir")}
    meta = train_lungs(LungTrainConfig(**settings), command=command_line())
    validation, latency = meta.metrics["validation"], meta.metrics["latency"]
    print(
        f"wrote {args.out / 'lungs.pt'}: validation Dice {validation['dice']['mean']:.4f} "
        f"(p10 {validation['dice']['p10']:.4f}), {latency['median_ms_display_256']:.1f} ms per scan"
    )
    return EXIT_OK
