"""Training the lung segmenter from scratch on the shared lung mask set, and measuring it.

Each image trains only the output channel of its source's mask convention (``SOURCE_CONVENTION``): binary
cross-entropy on the soft (area-averaged) mask plus a soft Dice loss. AdamW with a one-cycle learning rate.
After every epoch the full pipeline (``segment``, postprocessing included, at the display image's size) is
scored on the validation part and the epoch with the best mean Dice is kept. The run's state is saved after
every epoch in ``runs/lungs.state.pt``; ``resume=True`` continues from it.

Longer than our usual ~250 lines for now: the loop, its resumable state and the held-out measurement that
the metadata records live together until the segmenter joins the inference path (then the measurement moves
to the assessment package).
"""

from __future__ import annotations

import copy
import os
import platform
import random
import statistics
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from covidnet.io.reading import Scan, read_scan
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
from covidnet.lungs.model import CONVENTIONS, SOURCE_CONVENTION, LungUNet
from covidnet.lungs.segment import PLAUSIBLE_QUALITY, LungSegmenter
from covidnet.models.checkpoints import default_weights_dir, sha256_of
from covidnet.provenance import git_commit, seed_everything

DISEASED = ("covid", "pneumonia")


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
    state = None
    if config.resume and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
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
        first_epoch, best, seconds = _restore(state, model, optimizer, shuffle_rng, config)
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
        run_state = {"split": split, "groups": groups, "seconds": seconds, "history": config.history}
        _save_state(state_path, epoch + 1, best, run_state, model, optimizer, shuffle_rng)

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
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items() if k != "history"}
    training = {
        "data": f"{config.data} (metadata.csv, {len(records)} image/mask pairs)",
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


def dice_score(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two bool masks (1.0 when both are empty)."""
    total = predicted.sum() + truth.sum()
    return float(2 * np.logical_and(predicted, truth).sum() / total) if total else 1.0


def validation_dice(
    segmenter: LungSegmenter, scans: list[Scan], masks: list[np.ndarray], records: list[LungRecord], *, own: bool = True
) -> list[float]:
    """Dice of each scan's mask in its source's convention (``own``) or in the other one, at display size."""
    scores = []
    for scan, truth, record in zip(scans, masks, records, strict=True):
        convention = SOURCE_CONVENTION[record.source]
        if not own:
            convention = next(c for c in CONVENTIONS if c != convention)
        scores.append(dice_score(segmenter.segment(scan.image, convention).mask, truth))
    return scores


def _summary(scores: list[float]) -> dict:
    """n, mean, 10th percentile and minimum, rounded."""
    values = {"mean": np.mean(scores), "p10": np.percentile(scores, 10), "min": np.min(scores)}
    return {"n": len(scores), **{k: round(float(v), 4) for k, v in values.items()}}


def _by(key: str, scores: list[float], records: list[LungRecord]) -> dict:
    """``_summary`` of the scores per value of a record attribute (source or diagnosis)."""
    values = sorted({getattr(r, key) for r in records})
    return {v: _summary([s for s, r in zip(scores, records, strict=True) if getattr(r, key) == v]) for v in values}


def evaluate_segmenter(
    segmenter: LungSegmenter, scans: list[Scan], masks: list[np.ndarray], records: list[LungRecord]
) -> dict:
    """Dice on held-out masks overall, per source and per diagnosis (mean, 10th percentile, min), each image in
    its source's convention; the other convention's Dice against the same masks; quality and plausibility."""
    own = validation_dice(segmenter, scans, masks, records)
    other = validation_dice(segmenter, scans, masks, records, own=False)
    diseased = [d for d, r in zip(own, records, strict=True) if r.diagnosis in DISEASED]
    results = [segmenter.segment(s.image, SOURCE_CONVENTION[r.source]) for s, r in zip(scans, records, strict=True)]
    quality = [m.quality for m in results]
    return {
        "what": "Dice at the display image's size, full pipeline (postprocessing included), each image scored in "
        "its source's convention (ieee8023v7: full, covidquex: visible)",
        "dice": _summary(own),
        "dice_by_source": _by("source", own, records),
        "dice_by_diagnosis": _by("diagnosis", own, records),
        "dice_diseased": _summary(diseased) if diseased else None,
        "dice_other_convention_by_source": _by("source", other, records),
        "quality": {k: round(float(f(quality)), 4) for k, f in (("min", np.min), ("median", np.median))},
        "plausible_fraction": round(float(np.mean([m.plausible for m in results])), 4),
    }


def measure_latency(segmenter: LungSegmenter, scans: list[Scan], *, repeats: int = 5) -> dict:
    """Median milliseconds per scan for ``segment`` on display images (resizing in and out, postprocessing), on
    the validation scans as they are (longer side 256) and on one of them enlarged to 1024×1024."""

    def median_ms(images: list[Image.Image]) -> float:
        segmenter.segment(images[0])
        times = []
        for _ in range(repeats):
            for image in images:
                started = time.perf_counter()
                segmenter.segment(image)
                times.append(time.perf_counter() - started)
        return round(1000 * statistics.median(times), 2)

    images = [s.image for s in scans]
    large = images[0].resize((1024, 1024), Image.Resampling.BILINEAR)
    return {
        "median_ms_display_256": median_ms(images),
        "median_ms_display_1024": median_ms([large] * max(len(images) // 4, 1)),
        "runs": repeats * len(images),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }


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


def _save_state(path: Path, epoch: int, best: dict, run_state: dict, model, optimizer, rng) -> None:
    """Everything a resumed run needs to continue where this one stopped, random states included."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "epoch": epoch,
        "best_dice": best["dice"],
        "best_epoch": best["epoch"],
        "best_state": best["state"],
        **run_state,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "shuffle": rng.get_state(), "python": random.getstate()},
    }
    torch.save(state, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


def _restore(state: dict, model, optimizer, rng, config: LungTrainConfig) -> tuple[int, dict, float]:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"]["torch"])
    rng.set_state(state["rng"]["shuffle"])
    random.setstate(state["rng"]["python"])
    config.history = list(state["history"])
    print(f"resuming after epoch {state['epoch']} (best val Dice {state['best_dice']:.4f})", flush=True)
    best = {"dice": state["best_dice"], "epoch": state["best_epoch"], "state": state["best_state"]}
    return state["epoch"], best, state["seconds"]
