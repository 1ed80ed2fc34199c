"""What an analysis returns: ``Analysis`` (one scan, one backbone) and ``Ensemble`` (several backbones).

Their ``to_dict()`` is the one serialised form: the CLI's JSON rows, the app's JSON download and the
Batch page's table are all built from it. A scan the chest X-ray gate refused gets no class there: ``prediction``
and ``uncertain`` are None and ``flagged`` holds the gate's verdict (``not_chest_xray`` or ``lateral_view``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from covidnet.errors import CovidNetError
from covidnet.inference.drawing import outline, overlay
from covidnet.lungs.segment import LungMask
from covidnet.notices import GATE_CODES, ScanWarning

MAJORITY = 0.5  # the uncertainty threshold when no validated one is recorded: no class has a majority
ENSEMBLE = "ensemble"  # the ensemble's name where a backbone's name would stand (rows, reports)


@dataclass(frozen=True)
class Analysis:
    """One scan analysed by one backbone."""

    backbone: str
    probabilities: dict[str, float]  # calibrated, class → probability, summing to 1
    prediction: str  # the most probable class
    target: str  # the class the heatmap explains
    heatmap: np.ndarray | None  # float32 in [0, 1], shape (height, width) of the display image; None without CAM
    grid: np.ndarray | None  # the map at the explained layer's resolution (8×8 at 128 pixels)
    image: Image.Image  # the scan's display image, which the heatmap lines up with
    cam: str | None
    seconds: float
    warnings: list[ScanWarning] = field(default_factory=list)
    uncertain_below: float | None = None  # the checkpoint's validated threshold (None: none recorded)
    lungs: LungMask | None = None  # the lungs found on the scan (None: no lung segmenter installed)
    heatmap_in_lungs: float | None = None  # the share of the heatmap's mass inside plausible lungs (else None)
    # the distance of the film's penultimate features from the training films', over its threshold: above 1 the film
    # is unfamiliar (None: no unfamiliar-film signal fitted for these weights)
    unfamiliarity: float | None = None

    @property
    def flagged(self) -> bool:
        """Whether the chest X-ray gate flagged the scan (not a chest X-ray, or a lateral view: its probabilities
        then mean nothing)."""
        return self.refusal is not None

    @property
    def refusal(self) -> ScanWarning | None:
        """The chest X-ray gate's warning when it flagged the scan, else None."""
        return next((w for w in self.warnings if w.code in GATE_CODES), None)

    @property
    def uncertainty_threshold(self) -> float:
        """The top probability below which the prediction is called uncertain."""
        return MAJORITY if self.uncertain_below is None else self.uncertain_below

    @property
    def uncertain(self) -> bool:
        """Whether the most probable class falls short of ``uncertainty_threshold``."""
        return self.probabilities[self.prediction] < self.uncertainty_threshold

    def overlay(self, opacity: float = 0.4, *, lung_outline: bool = False) -> Image.Image | None:
        """The heatmap drawn over the scan (RGB), drawn on request; None without a heatmap. ``lung_outline``
        also draws the border of the lungs found (when they are plausible)."""
        if self.heatmap is None:
            return None
        drawn = overlay(self.image, self.heatmap, opacity=opacity)
        if lung_outline and self.lungs is not None and self.lungs.plausible:
            drawn = outline(drawn, self.lungs.mask)
        return drawn

    def to_dict(self) -> dict[str, Any]:
        """The analysis as JSON-ready data (no images); a refused scan has no prediction (see the module)."""
        return _record(self.backbone, self.probabilities, self.prediction, self.uncertain, self.refusal,
                       self.heatmap_in_lungs, self.unfamiliarity, self.lungs, self.warnings)  # fmt: skip


@dataclass(frozen=True)
class Ensemble:
    """Several backbones' analyses of one scan, combined by averaging their calibrated probabilities."""

    members: dict[str, Analysis]  # backbone → its analysis
    uncertain_below: float | None = None  # the ensemble's calibrated threshold for these members (None: none known)

    @property
    def probabilities(self) -> dict[str, float]:
        """The members' average, class → probability."""
        classes = list(next(iter(self.members.values())).probabilities)
        per_model = np.array([[[a.probabilities[c] for c in classes]] for a in self.members.values()])
        return dict(zip(classes, map(float, average_probabilities(per_model)[0]), strict=True))

    @property
    def prediction(self) -> str:
        probabilities = self.probabilities
        return max(probabilities, key=probabilities.get)

    @property
    def uncertainty_threshold(self) -> float:
        """The top probability below which the ensemble's prediction is called uncertain."""
        return MAJORITY if self.uncertain_below is None else self.uncertain_below

    @property
    def uncertain(self) -> bool:
        """Whether the ensemble's most probable class falls short of ``uncertainty_threshold``."""
        return self.probabilities[self.prediction] < self.uncertainty_threshold

    @property
    def agree(self) -> bool:
        """Whether every member predicts the same class."""
        return len({a.prediction for a in self.members.values()}) == 1

    @property
    def flagged(self) -> bool:
        """Whether any member's gate flagged the scan."""
        return self.refusal is not None

    @property
    def refusal(self) -> ScanWarning | None:
        """The first member's gate warning, when any member's gate flagged the scan."""
        return next((a.refusal for a in self.members.values() if a.refusal is not None), None)

    def to_dict(self) -> dict[str, Any]:
        """The ensemble as an analysis's JSON-ready data, named ``ENSEMBLE``: its probabilities and prediction,
        the first member's lungs, the gate's refusal by any member and the warnings every member carries (no
        heatmap of its own)."""
        first, *others = self.members.values()
        shared = [w for w in first.warnings if all(w.code in {v.code for v in a.warnings} for a in others)]
        refusal = self.refusal
        warnings = shared if refusal is None or refusal in shared else [refusal, *shared]
        return _record(ENSEMBLE, self.probabilities, self.prediction, self.uncertain, refusal, None, None,
                       first.lungs, warnings)  # fmt: skip


def ensemble(analyses: Sequence[Analysis], uncertain_below: float | None = None) -> Ensemble:
    """The ensemble of several backbones' analyses of the same scan; ``uncertain_below`` is its calibrated threshold
    (``covidnet.ensemble_threshold``), if one is known for these backbones."""
    if not analyses:
        raise CovidNetError("An ensemble needs at least one analysis.")
    if len({tuple(a.probabilities) for a in analyses}) > 1:
        raise CovidNetError(
            "An ensemble needs backbones trained on the same classes; these were trained on different ones."
        )
    return Ensemble({a.backbone: a for a in analyses}, uncertain_below)


def _record(
    backbone: str,
    probabilities: dict[str, float],
    prediction: str,
    uncertain: bool,
    refusal: ScanWarning | None,
    heatmap_in_lungs: float | None,
    unfamiliarity: float | None,
    lungs: LungMask | None,
    warnings: Sequence[ScanWarning],
) -> dict[str, Any]:
    """The serialised form ``Analysis`` and ``Ensemble`` share: a refused scan has no prediction."""
    return {
        "backbone": backbone,
        "probabilities": dict(probabilities),
        "prediction": None if refusal is not None else prediction,
        "uncertain": None if refusal is not None else uncertain,
        "flagged": None if refusal is None else refusal.code.value,
        "heatmap_in_lungs": heatmap_in_lungs,
        "unfamiliarity": unfamiliarity,
        "lungs": None if lungs is None else lungs.summary(),
        "warnings": [w.to_dict() for w in warnings],
    }


def average_probabilities(per_model: np.ndarray) -> np.ndarray:
    """The ensemble rule: the mean of the members' calibrated probabilities.

    (models, scans, classes) → (scans, classes).
    """
    return np.mean(per_model, axis=0)
