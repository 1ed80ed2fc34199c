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

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from covidnet.inference.feature_gate import GATE_QUANTILE, FeatureGate, StageExtractor
from covidnet.inference.network import Network
from covidnet.io.reading import Scan
from covidnet.lungs.segment import LungMask
from covidnet.notices import ScanWarning, WarningCode

COLOUR_SATURATION = 0.25  # HSV saturation above which a pixel counts as coloured
COLOUR_PIXELS = 0.02  # more than this share of coloured pixels: a colour picture
FLAT_STD = 6.0  # grey levels (of 255): below this the image is essentially uniform
LATERAL_CONFIDENCE = 0.5  # the lung segmenter's mean confidence (2p − 1) over the region it found


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
    stages: StageExtractor | None = None  # the stages of the network the feature check was fitted on

    @property
    def fitted(self) -> bool:
        """Whether the feature-distance check is part of this gate (it needs a fitted gate file)."""
        return self.features is not None

    @contextmanager
    def watching(self, network: Network) -> Iterator[Callable[[torch.Tensor], list[torch.Tensor]]]:
        """For a pass of ``network`` run inside this block: the function that gives the statistics of the gate's
        stages for that pass's batch. They are recorded during the pass when the gate was fitted on ``network``;
        otherwise the gate runs its own network up to its last stage on the same batch (call it after the block,
        so that only one network's lock is held at a time). A gate with stages but no fitted check yet records
        them too: that is how its check is fitted (``covidnet fit-gate``)."""
        if self.stages is None:
            yield lambda _batch: []
        elif self.stages.network is network:
            with self.stages.recording() as recorded:
                yield lambda _batch: recorded.statistics()
        else:
            yield self.stages.extract

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
    return checks.confidence >= LATERAL_CONFIDENCE and checks.area == 1 and checks.balance == 0


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
