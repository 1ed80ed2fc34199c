"""Measuring a lung segmenter on held-out masks: Dice (overall, per source and diagnosis, in either mask
convention), quality and plausibility, and latency; what the segmenter's metadata records."""

from __future__ import annotations

import os
import platform
import statistics
import time

import numpy as np
import torch
from PIL import Image

from covidnet.classes import TASK
from covidnet.io.reading import Scan
from covidnet.lungs.data import LungRecord
from covidnet.lungs.model import CONVENTIONS, SOURCE_CONVENTION
from covidnet.lungs.segment import LungSegmenter


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
    diseased = [d for d, r in zip(own, records, strict=True) if r.diagnosis in TASK.diseases]
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
