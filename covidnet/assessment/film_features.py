"""What the unfamiliar-film signal is fitted and measured on: one predictor's penultimate features, logits and
(optionally) its Grad-CAM heatmap's share inside the lungs, for a list of labelled films, computed in chunks that
are cached under a folder keyed by the checkpoint's sha256, so that an interrupted run resumes where it stopped
and a second run costs nothing."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from covidnet.data.records import Record
from covidnet.inference.predictor import Predictor
from covidnet.io.reading import read_scan
from covidnet.models.artifacts import save_tensors

CHUNK = 128  # films per cached chunk
HEATMAP_METHOD = "gradcam"  # the heatmap whose share inside the lungs sets the lung-share cut


@dataclass(frozen=True)
class FilmFeatures:
    """One row per film: penultimate features, logits, true labels and the heatmap's share inside the lungs
    (NaN where no plausible lungs were found, or no heatmap was asked for)."""

    features: np.ndarray
    logits: np.ndarray
    labels: np.ndarray
    in_lungs: np.ndarray

    @property
    def wrong(self) -> np.ndarray:
        """Whether the model's answer (the most probable class) is wrong, per film."""
        return self.logits.argmax(1) != self.labels


def subsample(records: list[Record], limit: int | None, *, seed: int = 0) -> list[Record]:
    """At most ``limit`` of ``records`` (all for None), drawn at random with ``seed``, in their original order."""
    if limit is None or len(records) <= limit:
        return records
    keep = set(random.Random(seed).sample(range(len(records)), limit))
    return [r for k, r in enumerate(records) if k in keep]


def film_features(predictor: Predictor, records: list[Record], cache: Path, *, heatmaps: bool = False) -> FilmFeatures:
    """``FilmFeatures`` of ``records`` by ``predictor``, each chunk read from ``cache`` when it is there."""
    key = hashlib.sha256("\n".join(str(r.path) for r in records).encode()).hexdigest()[:12]
    folder = Path(cache) / f"{predictor.backbone}-{predictor.meta.sha256[:12]}"
    parts = []
    for start in tqdm(range(0, len(records), CHUNK), desc=f"{predictor.backbone} features"):
        path = folder / f"{key}-{start}{'-cam' if heatmaps else ''}.pt"
        if path.exists():  # written whole or not at all (``save_tensors``)
            parts.append(torch.load(path, map_location="cpu", weights_only=True))
            continue
        part = _chunk(predictor, records[start : start + CHUNK], heatmaps)
        save_tensors(part, path)
        parts.append(part)
    return FilmFeatures(
        *(torch.cat([p[name] for p in parts]).numpy() for name in ("features", "logits")),
        np.array([predictor.meta.classes.index(r.label) for r in records]),
        torch.cat([p["in_lungs"] for p in parts]).numpy(),
    )


def _chunk(predictor: Predictor, records: list[Record], heatmaps: bool) -> dict[str, torch.Tensor]:
    scans = [read_scan(r.path) for r in records]
    needed = heatmaps or predictor.classifier.preprocessing.crops_to_lungs
    lungs = predictor.segmenter.segment_batch([s.image for s in scans]) if predictor.segmenter and needed else None
    forward = predictor.forward(scans, lungs)
    in_lungs = [float("nan")] * len(scans)
    if heatmaps:
        masks = lungs or [None] * len(scans)
        prepared = [predictor.classifier.prepare(s, m) for s, m in zip(scans, masks, strict=True)]
        analyses = predictor.analyze_batch(scans, cam=HEATMAP_METHOD, prepared=prepared)
        in_lungs = [float("nan") if a.heatmap_in_lungs is None else a.heatmap_in_lungs for a in analyses]
    return {
        "features": forward.features.float(),
        "logits": forward.logits.float(),
        "in_lungs": torch.tensor(in_lungs, dtype=torch.float64),
    }
