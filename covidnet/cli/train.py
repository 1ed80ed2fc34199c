"""``covidnet train``: train one backbone and write its checkpoint and metadata; ``covidnet leave-one-out``: train
it once per data source without that source, and measure each model on the source it never saw."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from covidnet.cli.common import EXIT_OK, command_line
from covidnet.data.locations import DEFAULT_DATA, DEFAULT_SPLIT
from covidnet.data.sources import BALANCING
from covidnet.io.preprocessing import INTENSITY_STEPS
from covidnet.models.checkpoints import default_weights_dir
from covidnet.models.registry import backbones
from covidnet.training.augmentation import AUGMENTATIONS

if TYPE_CHECKING:
    from covidnet.assessment.leave_one_out_report import HeldOutSource

LEAVE_ONE_OUT_FOLDER = Path("runs/leave_one_out")


def add(commands: argparse._SubParsersAction) -> None:
    """Register ``train`` and ``leave-one-out``."""
    train = commands.add_parser("train", help="train one backbone and write its checkpoint and metadata")
    add_training_options(train, epochs=12)
    train.add_argument("--resume", action="store_true", help="continue from <state-dir>/<backbone>.state.pt")
    train.add_argument("--state-dir", type=Path, default=Path("runs"), help="resumable state and the lung-box cache")
    train.add_argument("--out", type=Path, default=default_weights_dir())
    train.set_defaults(run=run)

    loso = commands.add_parser(
        "leave-one-out", help="train once per data source without it; measure each model on the source it never saw"
    )
    add_training_options(loso, epochs=3)
    loso.add_argument("--sources", nargs="+", metavar="SOURCE", help="data sets to leave out (default: every one "
                      "with two or more labels)")  # fmt: skip
    loso.add_argument("--folder", type=Path, default=LEAVE_ONE_OUT_FOLDER, help="checkpoints of each round")
    loso.add_argument("--out", type=Path, required=True, help="report JSON to write")
    loso.set_defaults(run=run_leave_one_out)


def add_training_options(parser: argparse.ArgumentParser, *, epochs: int) -> None:
    """The options that make a training run (``TrainConfig``'s fields)."""
    parser.add_argument("--backbone", required=True, choices=backbones())
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split-file", type=Path, default=DEFAULT_SPLIT)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument(
        "--init", default="scratch", help="scratch, imagenet (from TORCH_HOME's cache), or a weights folder"
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--limit", type=int, default=None, help="use every n-th image only (quick runs)")
    parser.add_argument("--crop", default="none", choices=["none", "lungs"], help="train on lung crops (recorded)")
    parser.add_argument("--crop-margin", type=float, default=0.1, help="the lung box widened by this share per side")
    parser.add_argument(
        "--intensity", default="none", choices=sorted(INTENSITY_STEPS), help="intensity step (recorded): equalize"
    )
    parser.add_argument("--augment", default="xray", choices=AUGMENTATIONS, help="source-cues: against source looks")
    parser.add_argument("--balance", default="label", choices=BALANCING, help="draw batches balanced by this")
    parser.add_argument("--adversary", type=float, default=0.0, help="source-adversarial strength (0: none)")
    parser.add_argument(
        "--holdout", nargs="+", default=(), metavar="SOURCE",
        help="data sets or repositories moved from training into validation (model selection on unseen sources)",
    )  # fmt: skip


def training_config(args: argparse.Namespace, **fields):
    """The ``TrainConfig`` the parsed options describe (``fields`` override them)."""
    from dataclasses import fields as config_fields

    from covidnet.training.train import TrainConfig

    known = {f.name for f in config_fields(TrainConfig)}
    settings = {k: v for k, v in vars(args).items() if k in known} | {"holdout": tuple(args.holdout)}
    return TrainConfig(**(settings | fields))


def run(args: argparse.Namespace) -> int:
    """Train with the flags as the configuration; print the validation metrics and temperature."""
    from covidnet.training.train import train

    meta = train(training_config(args), command=command_line())
    print(f"wrote {meta.backbone}: validation {meta.metrics['validation']}, temperature {meta.temperature:.3f}")
    return EXIT_OK


def run_leave_one_out(args: argparse.Namespace) -> int:
    """Every leave-one-source-out round; write the report and print each source's figures."""
    from covidnet.assessment.report_files import write_leave_one_out_report
    from covidnet.experiments.leave_one_out import leave_one_source_out

    template = training_config(args, out=args.folder)
    report = leave_one_source_out(template, args.folder, sources=args.sources, command=command_line())
    write_leave_one_out_report(report, args.out)
    for source, held_out in report.sources.items():
        print(round_line(source, held_out))
    print(f"report: {args.out}")
    return EXIT_OK


def round_line(source: str, held_out: HeldOutSource) -> str:
    """One round's figures in a line; a source with one label has no AUC, only what was found of it."""
    left_out = held_out.left_out
    auc = "–" if left_out.macro_auc is None else f"{left_out.macro_auc:.3f}"
    found = ", ".join(f"{name} {value:.2f}" for name, value in left_out.sensitivity.items() if value is not None)
    return (
        f"{source:<24} left out: macro AUC {auc} (n={left_out.n}; found: {found}); "
        f"internal test without it {held_out.internal_test_macro_auc:.3f}"
    )
