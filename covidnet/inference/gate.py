"""The chest X-ray gate: flags inputs that do not look like frontal chest X-rays, with a reason a
person understands. The models know chest X-rays and nothing else, so their probabilities for
anything else mean nothing.

Checks, cheapest first:
1. colour: a radiograph is grey; many clearly coloured pixels mean a photograph, drawing or screenshot;
2. blank: a nearly uniform image holds no anatomy;
3. feature distance: for each of the backbone's first three stages, the Mahalanobis distance of its
   per-channel mean and standard deviation from those of the training images (Lee et al. 2018), each
   divided by its ``GATE_QUANTILE`` quantile on the validation split; the largest of them is the score,
   and the gate's limit is that score's ``GATE_QUANTILE`` quantile on the validation split;
4. lungs (when the lung segmenter ran): no plausible pair of lung fields. One lung-like region instead of two
   side by side is reported as a lateral view (``lateral_view``), anything else as "no lung fields found".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from covidnet.errors import CheckpointError
from covidnet.io.reading import Scan
from covidnet.lungs.segment import LungMask
from covidnet.models.checkpoints import sha256_of
from covidnet.notices import ScanWarning, WarningCode

COLOUR_SATURATION = 0.25  # HSV saturation above which a pixel counts as coloured
COLOUR_PIXELS = 0.02  # more than this share of coloured pixels: a colour picture
FLAT_STD = 6.0  # grey levels (of 255): below this the image is essentially uniform
GATE_QUANTILE = 0.99  # share of validation X-rays that pass each stage and the whole gate
LATERAL_CONFIDENCE = 0.5  # the lung segmenter's mean confidence (2p − 1) over the region it found


def stage_statistics(output: torch.Tensor) -> torch.Tensor:
    """Per-channel spatial mean and standard deviation of a stage's output: (N, 2·C)."""
    flat = output.detach().float().flatten(2)
    return torch.cat([flat.mean(2), flat.std(2)], 1)


def mahalanobis(stats: torch.Tensor, mean: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """Each row's Mahalanobis distance from ``mean`` under ``precision`` (an inverse covariance), in double."""
    centred = stats.double() - mean
    return ((centred @ precision) * centred).sum(1).clamp(min=0).sqrt()


@dataclass(frozen=True)
class FeatureGate:
    """Per stage: the training images' mean and shrunk inverse covariance, and a validation scale."""

    means: tuple[torch.Tensor, ...]
    precisions: tuple[torch.Tensor, ...]
    scales: tuple[float, ...]
    threshold: float

    def score(self, stages: list[torch.Tensor]) -> torch.Tensor:
        """The largest scaled Mahalanobis distance over the stages, one per image."""
        distances = [
            mahalanobis(stats, mean, precision) / scale
            for stats, mean, precision, scale in zip(stages, self.means, self.precisions, self.scales, strict=True)
        ]
        return torch.stack(distances).amax(0)


def fit_gate(train: list[np.ndarray], val: list[np.ndarray], *, quantile: float = GATE_QUANTILE) -> FeatureGate:
    """A gate from per-stage statistics of training images, scaled and thresholded on validation ones."""
    from sklearn.covariance import LedoitWolf

    means, precisions, scales = [], [], []
    for train_stats, val_stats in zip(train, val, strict=True):
        estimate = LedoitWolf().fit(train_stats)
        mean = torch.from_numpy(estimate.location_).double()
        precision = torch.from_numpy(estimate.precision_).double()
        distances = mahalanobis(torch.from_numpy(val_stats), mean, precision).numpy()
        means.append(mean)
        precisions.append(precision)
        scales.append(float(np.quantile(distances, quantile)))
    unthresholded = FeatureGate(tuple(means), tuple(precisions), tuple(scales), float("inf"))
    scores = unthresholded.score([torch.from_numpy(v) for v in val]).numpy()
    return FeatureGate(tuple(means), tuple(precisions), tuple(scales), float(np.quantile(scores, quantile)))


def save_gate(gate: FeatureGate, path: Path) -> str:
    """Write the gate's tensors (precision matrices as float32) to ``path``; return its sha256."""
    state = {
        "means": [m.float() for m in gate.means],
        "precisions": [p.float() for p in gate.precisions],
        "scales": torch.tensor(gate.scales),
        "threshold": torch.tensor(gate.threshold),
    }
    torch.save(state, path)
    return sha256_of(path)


def load_gate(path: Path, sha256: str) -> FeatureGate:
    """Verify and load a gate file (tensors only)."""
    if not path.exists() or sha256_of(path) != sha256:
        raise CheckpointError(f"{path.name} is missing or does not match the sha256 in its metadata; not loaded.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        return FeatureGate(
            means=tuple(m.double() for m in state["means"]),
            precisions=tuple(p.double() for p in state["precisions"]),
            scales=tuple(state["scales"].tolist()),
            threshold=float(state["threshold"]),
        )
    except (KeyError, TypeError, AttributeError):
        raise CheckpointError(f"{path.name} is not a gate file of this CovidNet version; refit it.") from None


def colour_share(scan: Scan) -> float:
    """The share of clearly coloured pixels (0 for greyscale files)."""
    if scan.colour is None:
        return 0.0
    saturation = np.asarray(scan.colour.convert("HSV"), dtype=np.float32)[..., 1] / 255.0
    return float((saturation > COLOUR_SATURATION).mean())


@dataclass(frozen=True)
class Gate:
    """The chest X-ray gate: the colour and blank checks, then the feature distance when one is fitted.

    ``check`` is its one entry point; prediction, evaluation and the gate report all call it.
    """

    features: FeatureGate | None = None

    @property
    def fitted(self) -> bool:
        """Whether the feature-distance check is part of this gate (it needs a fitted gate file)."""
        return self.features is not None

    def check(
        self,
        scans: Sequence[Scan],
        stages: list[torch.Tensor] | None = None,
        lungs: Sequence[LungMask | None] | None = None,
    ) -> list[list[ScanWarning]]:
        """The warnings for each scan (an empty list: it looks like a frontal chest X-ray).

        ``stages`` are the statistics of the gate's stages for the same scans (one tensor per stage, a
        row per scan); a fitted gate needs them, an unfitted one ignores them. ``lungs`` are the lungs the
        segmenter found on each scan (None, or a None entry: not segmented, the lung check is skipped).
        """
        scores = self.features.score(stages) if self.features is not None and stages else None
        lungs = lungs or [None] * len(scans)
        return [
            self._check(scan, None if scores is None else float(scores[i]), lungs[i]) for i, scan in enumerate(scans)
        ]

    def _check(self, scan: Scan, score: float | None, lungs: LungMask | None) -> list[ScanWarning]:
        share = colour_share(scan)
        if share > COLOUR_PIXELS:
            reason = (
                f"this looks like a colour photograph or drawing ({share:.0%} of its pixels are coloured); "
                "X-rays are grey"
            )
            return [_warning(reason, check="colour", coloured_share=share)]
        spread = float(np.asarray(scan.image, dtype=np.float32).std())
        if spread < FLAT_STD:
            reason = "this image is blank or nearly uniform: there is no anatomy to analyse"
            return [_warning(reason, check="blank", grey_level_std=spread)]
        if self.features is not None and score is not None and score > self.features.threshold:
            limit = self.features.threshold
            reason = (
                "this does not look like a frontal chest X-ray the model has learned: its image statistics are "
                f"further from the training X-rays than those of {GATE_QUANTILE:.0%} of validation X-rays "
                f"(score {score:.1f}, limit {limit:.1f})"
            )
            return [_warning(reason, check="features", score=score, limit=limit)]
        if lungs is not None and not lungs.plausible:
            return [_lung_warning(lungs)]
        return []


def looks_lateral(lungs: LungMask) -> bool:
    """One confident lung-like region of a plausible size, where a frontal view shows two side by side."""
    checks = lungs.checks
    return (
        checks.get("confidence", 0) >= LATERAL_CONFIDENCE
        and checks.get("area", 0) == 1
        and (checks.get("balance", 0) == 0)
    )


def _lung_warning(lungs: LungMask) -> ScanWarning:
    details = {"check": "lungs", "lung_quality": lungs.quality}
    if looks_lateral(lungs):
        message = (
            "A lateral (side) view? CovidNet found one lung field where a frontal view shows two side by side. "
            "Its models were trained on frontal views only, so the probabilities are not meaningful for this image."
        )
        return ScanWarning(WarningCode.LATERAL_VIEW, message, details)
    reason = f"no lung fields found: nothing on it looks like a pair of lungs (lung quality {lungs.quality:.2f})"
    return _warning(reason, **details)


def _warning(reason: str, **details: float | str) -> ScanWarning:
    message = f"Not a chest X-ray? {reason[0].upper()}{reason[1:]}. The probabilities are not meaningful for it."
    return ScanWarning(WarningCode.NOT_CHEST_XRAY, message, details)
