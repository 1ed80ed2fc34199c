"""The unfamiliar-film signal: how far a film's penultimate features lie from those of the training films, as the
mean cosine distance to its ``NEIGHBOURS`` nearest training films, divided by a threshold set on validation films,
so that 1.0 is the threshold and above it a film is called unfamiliar.

Nearest neighbours, not the Mahalanobis distance of the gate's statistics (``feature_gate``): tried first on the
shipped resnet18's features, the Mahalanobis distance ranked ieee8023's wrong answers below its right ones; the
neighbour distance ranks them above (``covidnet familiarity-report`` measures it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.functional import normalize

from covidnet.errors import CheckpointError
from covidnet.models.artifacts import Artifact, save_tensors

FAMILIARITY_QUANTILE = 0.95  # share of validation films at or below the threshold
NEIGHBOURS = 10  # training films the distance is averaged over


@dataclass(frozen=True)
class Familiarity:
    """The training films' unit-length penultimate features (one row each, float16), and the threshold."""

    reference: torch.Tensor
    threshold: float  # the validation films' ``FAMILIARITY_QUANTILE`` of the distance
    neighbours: int = NEIGHBOURS

    def distance(self, features: torch.Tensor) -> torch.Tensor:
        """Each row's mean cosine distance to its ``neighbours`` nearest training films (unscaled)."""
        similarity = normalize(features.detach().float(), dim=1) @ self.reference.float().T
        return 1.0 - similarity.topk(min(self.neighbours, len(self.reference)), dim=1).values.mean(1)

    def unfamiliarity(self, features: torch.Tensor) -> list[float]:
        """Each row's distance divided by the threshold: above 1, the film is unfamiliar."""
        return [float(d) / self.threshold for d in self.distance(features)]


def fit_familiarity(train: np.ndarray, val: np.ndarray, *, quantile: float = FAMILIARITY_QUANTILE) -> Familiarity:
    """Fitted on training films' penultimate features (rows), thresholded at validation films' ``quantile``."""
    reference = normalize(torch.from_numpy(train).float(), dim=1).half()
    unthresholded = Familiarity(reference, 1.0)
    distances = unthresholded.distance(torch.from_numpy(val)).numpy()
    return Familiarity(reference, float(np.quantile(distances, quantile)))


def save_familiarity(model: Familiarity, path: Path) -> str:
    """Write the model's tensors to ``path``; return its sha256."""
    state = {"reference": model.reference, "threshold": torch.tensor(model.threshold)}
    return save_tensors({**state, "neighbours": torch.tensor(model.neighbours)}, path)


def load_familiarity(path: Path, sha256: str) -> Familiarity:
    """Verify and load a familiarity file (tensors only)."""
    state = Artifact(path, sha256, "its checkpoint's metadata").load_tensors()
    try:
        return Familiarity(state["reference"], float(state["threshold"]), int(state["neighbours"]))
    except (KeyError, TypeError, AttributeError, ValueError):
        message = f"{Path(path).name} is not a familiarity file of this CovidNet version; refit it."
        raise CheckpointError(message) from None
