"""``covidnet train``: train one backbone and write its checkpoint and metadata."""

from __future__ import annotations

import argparse
from pathlib import Path

from covidnet.cli.common import EXIT_OK, command_line
from covidnet.io.preprocessing import INTENSITY_STEPS
from covidnet.models.checkpoints import default_weights_dir
from covidnet.models.registry import backbones
from covidnet.training.augmentation import AUGMENTATIONS
from covidnet.training.datasets import DEFAULT_DATA, DEFAULT_SPLIT
from covidnet.training.sources import BALANCING


def add(commands: argparse._SubParsersAction) -> None:
    """Register ``train``."""
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
    train.add_argument("--crop", default="none", choices=["none", "lungs"], help="train on lung crops (recorded)")
    train.add_argument("--crop-margin", type=float, default=0.1, help="the lung box widened by this share per side")
    train.add_argument(
        "--intensity", default="none", choices=sorted(INTENSITY_STEPS), help="intensity step (recorded): equalize"
    )
    train.add_argument("--augment", default="xray", choices=AUGMENTATIONS, help="source-cues: against source looks")
    train.add_argument("--balance", default="label", choices=BALANCING, help="draw batches balanced by this")
    train.add_argument("--adversary", type=float, default=0.0, help="source-adversarial strength (0: none)")
    train.add_argument(
        "--holdout", nargs="+", default=(), metavar="SOURCE",
        help="data sets or repositories moved from training into validation (model selection on unseen sources)",
    )  # fmt: skip
    train.add_argument("--resume", action="store_true", help="continue from <state-dir>/<backbone>.state.pt")
    train.add_argument("--state-dir", type=Path, default=Path("runs"), help="resumable state and the lung-box cache")
    train.add_argument("--out", type=Path, default=default_weights_dir())
    train.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train with the flags as the configuration; print the validation metrics and temperature."""
    from covidnet.training.train import TrainConfig, train

    settings = {k: v for k, v in vars(args).items() if k not in ("run", "weights_dir")}
    settings["holdout"] = tuple(settings["holdout"])
    meta = train(TrainConfig(**settings), command=command_line())
    print(f"wrote {meta.backbone}: validation {meta.metrics['validation']}, temperature {meta.temperature:.3f}")
    return EXIT_OK
