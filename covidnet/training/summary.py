"""What a checkpoint's metadata records about the run that trained it (``CheckpointMetadata.training``): the
data and split, the images per class, the sources, every setting, the history and the machine."""

from __future__ import annotations

import platform
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from covidnet.classes import CLASSES
from covidnet.data.records import Record
from covidnet.models.artifacts import sha256_of
from covidnet.models.metadata import TrainingRecord

if TYPE_CHECKING:
    from covidnet.training.train import TrainConfig


def _as_json(value):
    """A setting as the metadata file reads it back."""
    return str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value


def training_summary(
    config: TrainConfig, train_records: list[Record], val_records: list[Record], best_epoch: int, seconds: float
) -> TrainingRecord:
    """The metadata's ``training`` record of a finished run."""

    def counts(records: list[Record]) -> dict[str, int]:
        return {c: sum(r.label == c for r in records) for c in CLASSES}

    settings = {k: _as_json(v) for k, v in asdict(config).items() if k != "history"}
    return TrainingRecord(
        data=f"{config.data} ({len(train_records) + len(val_records)} images in train and val of the split file)",
        split_file_sha256=sha256_of(Path(config.split_file)),
        train_images=counts(train_records),
        val_images=counts(val_records),
        sources=sorted({r.origin for r in train_records}),
        held_out_sources=sorted({r.origin for r in val_records} - {r.origin for r in train_records}),
        settings=settings,
        best_epoch=best_epoch,
        history=config.history,
        seconds=round(seconds, 1),
        machine=f"{platform.machine()}, {torch.get_num_threads()} threads, device {config.device}",
        torch=torch.__version__,
    )
