"""``Explainer``: what makes heatmaps for an analysis, and ``explainer(method)``, the one way to get one.

An explainer is given the classifier and the batch of the pass the analysis runs. ``watch`` puts its hooks on
the classifier for that pass and yields a function that turns the pass's logits and target classes into one
heatmap grid per scan. A CAM formula (``covidnet.inference.cam``) needs nothing more; a method that needs the
model or the input again, such as Score-CAM, runs its extra passes with the classifier and batch it was given.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from covidnet.inference.cam import CamExplainer

if TYPE_CHECKING:
    from covidnet.inference.classifier import Classifier

Heatmaps = Callable[[torch.Tensor, torch.Tensor], list[np.ndarray]]  # (logits, target indices) → one grid per scan


class Explainer(Protocol):
    """Heatmaps for the scans of one pass."""

    name: str  # how results name the method
    needs_gradients: bool  # whether the pass must record gradients (False: it runs in inference mode)

    def watch(self, classifier: Classifier, batch: torch.Tensor) -> AbstractContextManager[Heatmaps]:
        """Hooks for the pass run inside the block; yields the function that makes the heatmaps from its logits."""
        ...


def explainer(method: str) -> Explainer:
    """The explainer of ``method`` (one of ``cam_methods()``; ``UnknownCamMethodError`` otherwise)."""
    return CamExplainer(method)
