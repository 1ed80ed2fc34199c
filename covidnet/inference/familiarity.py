"""The unfamiliar-film signal: how far a film's penultimate features lie from those of the training films, as a
Mahalanobis distance (the gate's statistics code, ``feature_gate``, applied to the head's input), divided by a
threshold set on validation films, so that 1.0 is the threshold and above it a film is called unfamiliar."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from covidnet.errors import CheckpointError
from covidnet.inference.feature_gate import fit_mahalanobis, mahalanobis
from covidnet.models.artifacts import Artifact, save_tensors

FAMILIARITY_QUANTILE = 0.95  # share of validation films at or below the threshold


@dataclass(frozen=True)
class Familiarity:
    """The training films' mean and shrunk inverse covariance of penultimate features, and the threshold."""

    mean: torch.Tensor
    precision: torch.Tensor
    threshold: float  # the validation films' ``quantile`` of the distance

    def distance(self, features: torch.Tensor) -> torch.Tensor:
        """Each row's Mahalanobis distance from the training films (unscaled)."""
        return mahalanobis(features.detach().float(), self.mean, self.precision)

    def unfamiliarity(self, features: torch.Tensor) -> list[float]:
        """Each row's distance divided by the threshold: above 1, the film is unfamiliar."""
        return [float(d) / self.threshold for d in self.distance(features)]


def fit_familiarity(train: np.ndarray, val: np.ndarray, *, quantile: float = FAMILIARITY_QUANTILE) -> Familiarity:
    """Fitted on training films' penultimate features (rows), thresholded at validation films' ``quantile``."""
    mean, precision = fit_mahalanobis(train)
    distances = mahalanobis(torch.from_numpy(val), mean, precision).numpy()
    return Familiarity(mean, precision, float(np.quantile(distances, quantile)))


def save_familiarity(model: Familiarity, path: Path) -> str:
    """Write the model's tensors to ``path`` (the precision as float32); return its sha256."""
    state = {"mean": model.mean.float(), "precision": model.precision.float()}
    return save_tensors({**state, "threshold": torch.tensor(model.threshold)}, path)


def load_familiarity(path: Path, sha256: str) -> Familiarity:
    """Verify and load a familiarity file (tensors only)."""
    state = Artifact(path, sha256, "its checkpoint's metadata").load_tensors()
    try:
        return Familiarity(state["mean"].double(), state["precision"].double(), float(state["threshold"]))
    except (KeyError, TypeError, AttributeError):
        message = f"{Path(path).name} is not a familiarity file of this CovidNet version; refit it."
        raise CheckpointError(message) from None
