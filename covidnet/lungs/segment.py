"""``segment_lungs``: the lung fields of a chest X-ray, as a mask on the scan's display image, with a quality score.

The display image is resized (squashed) to the segmenter's square input, standardised, and segmented; the
logits of the chosen mask convention are cleaned at the input resolution (only the two largest connected
components are kept, and holes inside them are filled), resized bilinearly to the display image and
thresholded at probability 0.5.

Quality, in [0, 1], is the product of six checks, each 1 when the result looks like a pair of lungs and
falling linearly to 0. Except for confidence, the ranges come from the shared set's reference masks (at 64×64):
their 0.5th to 99.5th percentiles lie inside the ranges that score 1. On the validation part, 154 of 155 real
scans are plausible (the other one is a poor mask, Dice 0.82); of the 174 images of the non-X-ray corpus
(``tests/gate_corpus.py``), 8 are (``covidnet gate-report``'s lung check; 5 before joined lungs were split, 15
before the ``shape`` check), and 22 of the 9,565 shared frontal X-rays are not.

- ``confidence``: the mean of 2p − 1 over the kept lung pixels (p, the lung probability); low for a hesitant mask.
- ``area``: the kept lungs cover 8–62% of the image (0 below 3% and above 80%).
- ``balance``: the smaller lung is at least 30% of the larger's area (0 with a single component).
- ``layout``: the two lungs sit side by side, their centres at least 20% of the width apart (0 at 10%), and
  at most 20% of the height apart vertically (0 at 30%).
- ``shape``: each lung is taller than wide (bounding box height/width at least 1.15, 0 at 0.9; the squashed
  image's proportions), the shorter lung is at least 65% as tall as the taller (0 at 45%), and their rows
  overlap by at least 60% of their joint height (0 at 40%). The least of the three counts.
- ``clutter``: 1 when all of the predicted lung lies in the two kept components, 0 when 30% lies outside them.

Two lungs joined into one region (above the heart, across a narrow mediastinum, as on many children's films)
are judged as two: a region holding most of the predicted lung is split at its waist, the column
in its middle 40% where it is thinnest, when that column holds less than ``WAIST`` of its thickest column's pixels.

``plausible`` is ``quality >= PLAUSIBLE_QUALITY`` (0.5).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from covidnet.errors import CovidNetError
from covidnet.io.reading import Scan, ScanSource, read_scan
from covidnet.lungs.checkpoint import LungsMetadata, load_lungs_checkpoint, lungs_paths
from covidnet.lungs.model import CONVENTIONS, standardise
from covidnet.models.artifacts import LoadCache

Box = tuple[int, int, int, int]  # (left, top, right, bottom) in display-image pixels, right/bottom exclusive

DEFAULT_CONVENTION = "full"
PLAUSIBLE_QUALITY = 0.5
WAIST = 0.35  # a region thinner than this share of its thickest column, in its middle, is two joined lungs
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class LungQuality:
    """The six factors of a mask's quality, each in [0, 1] (see the module's docstring)."""

    confidence: float = 0.0
    area: float = 0.0
    balance: float = 0.0
    layout: float = 0.0
    shape: float = 0.0
    clutter: float = 0.0

    @property
    def product(self) -> float:
        """The quality: the product of the six factors."""
        return float(np.prod([getattr(self, f.name) for f in fields(self)]))


@dataclass(frozen=True, eq=False)
class LungMask:
    """The lungs found on one scan, at its display image's size."""

    mask: np.ndarray  # bool (height, width): True = lung
    area_fraction: float  # the mask's share of the image
    box: Box | None  # the mask's bounding box, None when it is empty
    quality: float  # in [0, 1]: how much the mask looks like a pair of lungs (see the module's docstring)
    plausible: bool  # quality >= PLAUSIBLE_QUALITY
    convention: str = DEFAULT_CONVENTION  # "full" or "visible" (see covidnet.lungs.model.CONVENTIONS)
    checks: LungQuality = field(default_factory=LungQuality)  # the factors of quality

    def summary(self) -> dict:
        """Everything but the mask, JSON-ready."""
        return {
            "plausible": self.plausible,
            "quality": round(self.quality, 4),
            "area_fraction": round(self.area_fraction, 4),
            "box": None if self.box is None else list(self.box),
            "convention": self.convention,
        }


class Segmenter(Protocol):
    """What finds the lungs for the rest of CovidNet: a lung-crop checkpoint names the segmenter it was trained with
    by the sha256 of its weights."""

    sha256: str

    def segment_batch(
        self, images: Sequence[Image.Image], *, mapper: Callable[..., Iterable[LungMask]] = map
    ) -> list[LungMask]:
        """The lungs on each display image; ``mapper`` may run per-image work in parallel (a pool's ``map``)."""
        ...


class LungSegmenter:
    """The U-Net lung segmenter (a ``Segmenter``); ``segment(image)`` is ``segment_lungs`` on a display image."""

    def __init__(self, model: torch.nn.Module, meta: LungsMetadata) -> None:
        self.model, self.meta, self.input_size = model.eval(), meta, meta.input_size
        self.sha256 = meta.sha256

    def prepare(self, image: Image.Image) -> torch.Tensor:
        """A greyscale display image → the (1, 1, S, S) standardised input."""
        size = self.input_size
        small = image.convert("L").resize((size, size), Image.Resampling.BILINEAR)
        x = torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0)[None, None]
        return standardise(x)

    def segment(self, image: Image.Image, convention: str = DEFAULT_CONVENTION) -> LungMask:
        return self.segment_batch([image], convention=convention)[0]

    def segment_batch(
        self,
        images: Sequence[Image.Image],
        *,
        convention: str = DEFAULT_CONVENTION,
        mapper: Callable[..., Iterable[LungMask]] = map,
    ) -> list[LungMask]:
        """``segment`` for many images from one forward pass (batched scoring; its logits agree with one image at a
        time to float tolerance, see benchmarks/segment_in_batches.py for the speed-up); ``mapper`` runs the
        clean-up of each image's mask (a thread pool's ``map`` spreads it over the CPUs)."""
        if convention not in CONVENTIONS:
            raise CovidNetError(f"Unknown lung mask convention {convention!r}; choose from {', '.join(CONVENTIONS)}.")
        if not images:
            return []
        with torch.inference_mode():
            x = torch.cat([self.prepare(image) for image in images])
            logits = self.model(x)[:, CONVENTIONS.index(convention)]
        sizes = [(image.height, image.width) for image in images]
        return list(mapper(postprocess, logits, sizes, [convention] * len(images)))


def postprocess(logits: torch.Tensor, size: tuple[int, int], convention: str = DEFAULT_CONVENTION) -> LungMask:
    """One convention's (S, S) logits → the cleaned ``LungMask`` at ``size`` (height, width)."""
    from scipy import ndimage  # here, not at the top: it adds ~0.3 s to `import covidnet`

    logit = logits.float().numpy()
    probability = 1.0 / (1.0 + np.exp(-logit))
    labels, count = ndimage.label(logit > 0, structure=_EIGHT_CONNECTED)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    largest = np.argsort(areas)[::-1][:2] + 1
    kept = ndimage.binary_fill_holes(np.isin(labels, largest))
    labels, count = split_joined_lungs(labels, areas)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    largest = np.argsort(areas)[::-1][:2] + 1
    cleaned = np.where(kept, np.maximum(logit, 1.0), np.minimum(logit, -1.0)).astype(np.float32)
    up = F.interpolate(torch.from_numpy(cleaned)[None, None], size=size, mode="bilinear", align_corners=False)
    mask = (up[0, 0] > 0).numpy()
    checks = quality_checks(probability, labels, areas, largest, kept)
    quality = checks.product
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1) if rows.size else None
    return LungMask(
        mask=mask,
        area_fraction=float(mask.mean()),
        box=box,
        quality=quality,
        plausible=quality >= PLAUSIBLE_QUALITY,
        convention=convention,
        checks=checks,
    )


def split_joined_lungs(labels: np.ndarray, areas: np.ndarray) -> tuple[np.ndarray, int]:
    """``labels`` with a dominant region split in two at its waist (see the module's docstring), and the number
    of labels; unchanged when no region dominates or it has no waist."""
    if areas.size == 0:
        return labels, 0
    order = np.argsort(areas)[::-1]
    if areas.size > 1 and areas[order[1]] >= 0.3 * areas[order[0]]:
        return labels, int(areas.size)
    region = labels == order[0] + 1
    thickness = region.sum(0)
    columns = np.flatnonzero(thickness)
    first, width = columns[0], columns[-1] - columns[0] + 1
    middle = np.arange(first + max(1, round(0.3 * width)), first + min(width - 1, round(0.7 * width) + 1))
    if middle.size == 0:  # too narrow to have a middle
        return labels, int(areas.size)
    waist = middle[np.argmin(thickness[middle])]
    if thickness[waist] >= WAIST * thickness.max():
        return labels, int(areas.size)
    split = labels.copy()
    split[:, waist:][region[:, waist:]] = areas.size + 1
    return split, int(areas.size) + 1


def _ramp(value: float, zero: float, one: float) -> float:
    """0 at ``zero``, 1 at ``one``, linear between and clipped (either direction)."""
    return float(np.clip((value - zero) / (one - zero), 0.0, 1.0))


def quality_checks(
    probability: np.ndarray, labels: np.ndarray, areas: np.ndarray, largest: np.ndarray, kept: np.ndarray
) -> LungQuality:
    """The six factors of quality (see the module's docstring), at the input resolution."""
    from scipy import ndimage

    height, width = probability.shape
    if not kept.any():
        return LungQuality()
    area = float(kept.mean())
    confidence = float(np.clip(2 * probability[kept].mean() - 1, 0, 1))
    area_check = min(_ramp(area, 0.03, 0.08), _ramp(area, 0.80, 0.62))
    clutter = _ramp(1 - areas[largest - 1].sum() / max(areas.sum(), 1), 0.30, 0.0)
    if len(largest) != 2:
        return LungQuality(confidence=confidence, area=area_check, clutter=clutter)
    small, big = sorted(areas[largest - 1])
    centres = [np.argwhere(labels == k).mean(0) for k in largest]
    dy, dx = np.abs(centres[0] - centres[1]) / (height, width)
    boxes = ndimage.find_objects(labels)
    rows = [(boxes[k - 1][0].start, boxes[k - 1][0].stop) for k in largest]
    heights = [stop - start for start, stop in rows]
    aspect = min(h / (boxes[k - 1][1].stop - boxes[k - 1][1].start) for h, k in zip(heights, largest, strict=True))
    overlap = max(0, min(rows[0][1], rows[1][1]) - max(rows[0][0], rows[1][0]))
    joint = max(rows[0][1], rows[1][1]) - min(rows[0][0], rows[1][0])
    return LungQuality(
        confidence=confidence,
        area=area_check,
        balance=_ramp(small / big, 0.0, 0.30),
        layout=min(_ramp(dx, 0.10, 0.20), _ramp(dy, 0.30, 0.20)),
        shape=min(
            _ramp(aspect, 0.9, 1.15), _ramp(min(heights) / max(heights), 0.45, 0.65), _ramp(overlap / joint, 0.4, 0.6)
        ),
        clutter=clutter,
    )


_segmenters: LoadCache[LungSegmenter] = LoadCache()


def load_segmenter(weights_dir: Path | None = None) -> LungSegmenter:
    """The lung segmenter in ``weights_dir`` (default ``$COVIDNET_WEIGHTS`` or weights/), loaded once per process and
    folder, and again when its files change (``LoadCache``); a missing or changed file raises ``CheckpointError``."""
    pt_path, meta_path = lungs_paths(weights_dir)
    return _segmenters.get(
        pt_path.resolve(), [pt_path, meta_path], lambda: LungSegmenter(*load_lungs_checkpoint(weights_dir))
    )


def segment_lungs(
    scan: Scan | ScanSource,
    *,
    convention: str = DEFAULT_CONVENTION,
    weights_dir: Path | None = None,
) -> LungMask:
    """The lungs on ``scan`` (a ``Scan``, or anything ``read_scan`` accepts) as a ``LungMask`` at its display size.

    ``convention`` picks the border: ``"full"`` (default) is the whole lung field, including the lung behind the
    heart; ``"visible"`` stops at the heart border and the top of the diaphragm (JSRT style).
    """
    if not isinstance(scan, Scan):
        scan = read_scan(scan)
    return load_segmenter(weights_dir).segment(scan.image, convention)
