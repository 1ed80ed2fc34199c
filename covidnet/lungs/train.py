"""Training the lung segmenter from scratch on the shared lung mask set, and measuring it.

Each image trains only the output channel of its source's mask convention (``SOURCE_CONVENTION``): binary
cross-entropy on the soft (area-averaged) mask plus a soft Dice loss. AdamW with a one-cycle learning rate.
After every epoch the full pipeline (``segment``, postprocessing included, at the display image's size) is
scored on the validation part and the epoch with the best mean Dice is kept. The run's state is saved after
every epoch in ``runs/lungs.state.pt``; ``resume=True`` continues from it.

The held-out measurement the metadata records is in ``covidnet.lungs.measure``, the resumable state's saving and
restoring in ``covidnet.models.training_state``.
"""

from __future__ import annotations

import copy
import os
import platform
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from covidnet.io.reading import read_scan
from covidnet.lungs.checkpoint import LungsMetadata, save_lungs_checkpoint
from covidnet.lungs.data import (
    DEFAULT_LUNG_DATA,
    DEFAULT_PATIENT_METADATA,
    LungBatches,
    LungRecord,
    read_lung_records,
    read_mask,
    split_lung_records,
    write_split,
)
from covidnet.lungs.measure import evaluate_segmenter, measure_latency, validation_dice
from covidnet.lungs.model import CONVENTIONS, SOURCE_CONVENTION, LungUNet
from covidnet.lungs.segment import PLAUSIBLE_QUALITY, LungSegmenter
from covidnet.models.artifacts import sha256_of
from covidnet.models.checkpoints import default_weights_dir
from covidnet.models.training_state import load_training_state, restore_training_state, save_training_state
from covidnet.provenance import git_commit, recorded_path, seed_everything


@dataclass
class LungTrainConfig:
    data: Path = DEFAULT_LUNG_DATA
    patient_metadata: Path = DEFAULT_PATIENT_METADATA
    epochs: int = 40
    input_size: int = 64
    base: int = 16
    depth: int = 4
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 0  # 0: torch's default
    resume: bool = False
    state_dir: Path = Path("runs")
    out: Path = field(default_factory=default_weights_dir)
    limit: int | None = None  # use only n training and n // 4 validation images, evenly spaced (smoke tests)
    latency_repeats: int = 5
    history: list[dict] = field(default_factory=list, repr=False)


def train_lungs(config: LungTrainConfig, *, command: str = "") -> LungsMetadata:
    """Train the segmenter and write ``lungs.pt``, ``lungs.json`` and ``lungs.split.csv`` into ``config.out``."""
    launched, commit = time.perf_counter(), git_commit()
    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    records = read_lung_records(config.data)
    state_path = Path(config.state_dir) / "lungs.state.pt"
    state = load_training_state(state_path) if config.resume and state_path.exists() else None
    if state is not None:
        split, groups = state["split"], state["groups"]
    else:
        split, groups = split_lung_records(records, patient_metadata=config.patient_metadata, seed=config.seed)
    train_records = [r for r, s in zip(records, split, strict=True) if s == "train"]
    val_records = [r for r, s in zip(records, split, strict=True) if s == "val"]
    if config.limit:
        train_records = train_records[:: max(len(train_records) // config.limit, 1)][: config.limit]
        val_records = val_records[:: max(len(val_records) // max(config.limit // 4, 2), 1)][: max(config.limit // 4, 2)]

    architecture = {"name": "LungUNet", "base": config.base, "depth": config.depth}
    model = LungUNet(base=config.base, depth=config.depth)
    batches = LungBatches(train_records, config.input_size, CONVENTIONS, SOURCE_CONVENTION)
    val_scans = [read_scan(r.image) for r in val_records]
    val_masks = [read_mask(r.mask) for r in val_records]
    steps_per_epoch = len(batches) // config.batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    shuffle_rng = torch.Generator().manual_seed(config.seed)
    first_epoch, best, seconds = 0, {"dice": -1.0, "epoch": 0, "state": copy.deepcopy(model.state_dict())}, 0.0
    if state is not None:
        restore_training_state(state, model=model, optimizer=optimizer, rng=shuffle_rng)
        config.history = list(state["history"])
        print(f"resuming after epoch {state['epoch']} (best val Dice {state['best_dice']:.4f})", flush=True)
        first_epoch, seconds = state["epoch"], state["seconds"]
        best = {"dice": state["best_dice"], "epoch": state["best_epoch"], "state": state["best_state"]}
    scheduler = _one_cycle(optimizer, config.lr, config.epochs * steps_per_epoch, first_epoch * steps_per_epoch)

    setup_seconds = time.perf_counter() - launched
    for epoch in range(first_epoch, config.epochs):
        started = time.perf_counter()
        model.train()
        losses = []
        for x, y, channel in batches.batches(config.batch_size, shuffle_rng):
            logits = model(x).gather(1, channel.view(-1, 1, 1, 1).expand(-1, 1, *x.shape[-2:]))
            loss = segmentation_loss(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        model.eval()
        segmenter = LungSegmenter(model, _pending(config, architecture))
        dice = float(np.mean(validation_dice(segmenter, val_scans, val_masks, val_records)))
        seconds += time.perf_counter() - started
        loss = float(np.mean(losses))
        config.history.append(
            {"epoch": epoch + 1, "train_loss": round(loss, 5), "val_dice": round(dice, 5), "seconds": round(seconds, 1)}
        )
        progress = f"lungs epoch {epoch + 1}/{config.epochs}: loss {loss:.4f}, val Dice {dice:.4f}, {seconds:.0f} s"
        print(progress, flush=True)
        if dice > best["dice"]:
            best = {"dice": dice, "epoch": epoch + 1, "state": copy.deepcopy(model.state_dict())}
        entries = {
            "epoch": epoch + 1,
            "best_dice": best["dice"],
            "best_epoch": best["epoch"],
            "best_state": best["state"],
            "split": split,
            "groups": groups,
            "seconds": seconds,
            "history": config.history,
        }
        save_training_state(state_path, entries, model=model, optimizer=optimizer, rng=shuffle_rng)

    finishing = time.perf_counter()
    model.load_state_dict(best["state"])
    model.eval()
    segmenter = LungSegmenter(model, _pending(config, architecture))
    metrics = {
        "validation": evaluate_segmenter(segmenter, val_scans, val_masks, val_records),
        "latency": measure_latency(segmenter, val_scans, repeats=config.latency_repeats),
    }
    out = Path(config.out)
    write_split(out / "lungs.split.csv", records, split, groups)
    settings = {k: recorded_path(v) if isinstance(v, Path) else v for k, v in asdict(config).items() if k != "history"}
    training = {
        "data": f"{recorded_path(config.data)} (metadata.csv, {len(records)} image/mask pairs)",
        "split": "lungs.split.csv: grouped by ieee8023 patient id and near-duplicate cluster, stratified by source "
        "and diagnosis, fold 1 of 7 held out as validation",
        "split_sha256": sha256_of(out / "lungs.split.csv"),
        "train_images": _counts(train_records),
        "val_images": _counts(val_records),
        "loss": "per image on its source's convention channel: BCE on the area-averaged soft mask + soft Dice",
        "augmentation": "the same random affine (±10°, ±8% shift, 0.85–1.15 scale, ±5° shear) and resized crop "
        "(80–100% area, aspect 0.8–1.25) on image and mask; brightness ±30%, contrast ±30%, gamma 0.7–1.4 "
        "on the image only",
        "settings": settings,
        "epochs": len(config.history),
        "best_epoch": best["epoch"],
        "history": config.history,
        "seconds": round(seconds, 1),
        "seconds_what": "the epochs (training and validation), summed over resumed runs; total_seconds adds "
        "reading the data and making the split, and the final evaluation and latency measurement",
        "total_seconds": round(seconds + setup_seconds + time.perf_counter() - finishing, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
    }
    return save_lungs_checkpoint(
        model,
        out,
        architecture=architecture,
        input_size=config.input_size,
        preprocessing=_pending(config, architecture).preprocessing,
        postprocessing=_pending(config, architecture).postprocessing,
        training=training,
        metrics=metrics,
        command=command,
        commit=commit,
    )


def _pending(config: LungTrainConfig, architecture: dict) -> LungsMetadata:
    return LungsMetadata(
        architecture=architecture,
        input_size=config.input_size,
        sha256="",
        size_bytes=0,
        parameters=0,
        preprocessing={
            "read": "covidnet.read_scan display image (8-bit greyscale)",
            "resize": f"squash to {config.input_size}×{config.input_size}, PIL bilinear",
            "normalise": "per image: (x/255 − mean) / (std + 0.01)",
        },
        postprocessing={
            "keep": "two largest 8-connected components of logit > 0 at the input size, holes filled",
            "resize": "cleaned logits bilinearly to the display image, threshold 0",
            "plausible": f"quality >= {PLAUSIBLE_QUALITY} (see covidnet/lungs/segment.py)",
        },
    )


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE on the soft target plus (1 − soft Dice), per image, averaged."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2, 3))
    dice = (2 * inter + 1) / (p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1)
    return bce + (1 - dice).mean()


def _counts(records: list[LungRecord]) -> dict:
    by_source: dict[str, dict[str, int]] = {}
    for r in records:
        by_source.setdefault(r.source, {}).setdefault(r.diagnosis, 0)
        by_source[r.source][r.diagnosis] += 1
    return {s: {"total": sum(c.values()), **dict(sorted(c.items()))} for s, c in sorted(by_source.items())}


def _one_cycle(optimizer, lr: float, total_steps: int, done: int) -> torch.optim.lr_scheduler.OneCycleLR:
    """The one-cycle schedule over ``total_steps``, moved on by the ``done`` steps of earlier runs (a resumed run
    may ask for more epochs: the schedule then continues as if the run had started with that many)."""
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=max(total_steps, 1), pct_start=0.15)
    if 0 < done < total_steps:
        scheduler.last_epoch = done - 1
        with warnings.catch_warnings():  # "lr_scheduler.step() before optimizer.step()": on purpose here
            warnings.simplefilter("ignore", UserWarning)
            scheduler.step()
    return scheduler
