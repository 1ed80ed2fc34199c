"""What a checkpoint's metadata records about the run that trained it (``CheckpointMetadata.training``): the
data and split, the images per class, the sources, every setting, the history and the machine."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from covidnet.classes import CLASSES
from covidnet.data.records import Record
from covidnet.models.artifacts import sha256_of
from covidnet.models.metadata import TrainingRecord
from covidnet.provenance import recorded_path

if TYPE_CHECKING:
    from covidnet.training.train import TrainConfig


def _as_json(value):
    """A setting as the metadata file reads it back; a path (a ``Path``, or a string such as ``--init``'s folder
    when it is absolute) relative to the repository."""
    if isinstance(value, Path) or (isinstance(value, str) and os.path.isabs(value)):
        return recorded_path(value)
    return list(value) if isinstance(value, tuple) else value


def training_summary(
    config: TrainConfig, train_records: list[Record], val_records: list[Record], best_epoch: int, seconds: float
) -> TrainingRecord:
    """The metadata's ``training`` record of a finished run."""

    def counts(records: list[Record]) -> dict[str, int]:
        return {c: sum(r.label == c for r in records) for c in CLASSES}

    settings = {k: _as_json(v) for k, v in asdict(config).items() if k != "history"}
    images = len(train_records) + len(val_records)
    return TrainingRecord(
        data=f"{recorded_path(config.data)} ({images} images in train and val of the split file)",
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
