"""The chest X-ray gate: flags inputs that do not look like frontal chest X-rays, with a reason a
person understands. The models know chest X-rays and nothing else, so their probabilities for
anything else mean nothing.

Checks, cheapest first:
1. colour: a radiograph is grey; many clearly coloured pixels mean a photograph, drawing or screenshot;
2. blank: a nearly uniform image holds no anatomy;
3. feature distance: the Mahalanobis distance of the backbone's penultimate features from those of the
   training images, above a threshold set on the validation split (its ``GATE_QUANTILE`` quantile).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from covidnet.checkpoints import sha256_of
from covidnet.errors import CheckpointError
from covidnet.imaging import Scan

COLOUR_SATURATION = 0.25  # HSV saturation above which a pixel counts as coloured
COLOUR_PIXELS = 0.02  # more than this share of coloured pixels: a colour picture
FLAT_STD = 6.0  # grey levels (of 255): below this the image is essentially uniform
GATE_QUANTILE = 0.99  # share of validation X-rays whose feature distance passes the gate
CODE = "not_chest_xray"


@dataclass(frozen=True)
class FeatureGate:
    """Mean and shrunk inverse covariance of the training images' features, and the distance limit."""

    mean: torch.Tensor
    precision: torch.Tensor
    threshold: float

    def distance(self, features: torch.Tensor) -> torch.Tensor:
        """Mahalanobis distance of each row of ``features`` from the training images."""
        centred = features.double() - self.mean
        return ((centred @ self.precision) * centred).sum(1).clamp(min=0).sqrt()


def fit_gate(train_features: np.ndarray, val_features: np.ndarray, *, quantile: float = GATE_QUANTILE) -> FeatureGate:
    """A gate from training features, with the threshold at ``quantile`` of the validation distances."""
    from sklearn.covariance import LedoitWolf

    estimate = LedoitWolf().fit(train_features)
    gate = FeatureGate(
        mean=torch.from_numpy(estimate.location_).double(),
        precision=torch.from_numpy(estimate.precision_).double(),
        threshold=float("inf"),
    )
    distances = gate.distance(torch.from_numpy(val_features)).numpy()
    return FeatureGate(gate.mean, gate.precision, float(np.quantile(distances, quantile)))


def save_gate(gate: FeatureGate, path: Path) -> str:
    """Write the gate's tensors to ``path``; return the file's sha256."""
    torch.save({"mean": gate.mean, "precision": gate.precision, "threshold": torch.tensor(gate.threshold)}, path)
    return sha256_of(path)


def load_gate(path: Path, sha256: str) -> FeatureGate:
    """Verify and load a gate file (tensors only)."""
    if not path.exists() or sha256_of(path) != sha256:
        raise CheckpointError(f"{path.name} is missing or does not match its sha256 in the card; it was not loaded.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return FeatureGate(state["mean"], state["precision"], float(state["threshold"]))


def colour_share(scan: Scan) -> float:
    """The share of clearly coloured pixels (0 for greyscale files)."""
    if scan.colour is None:
        return 0.0
    saturation = np.asarray(scan.colour.convert("HSV"), dtype=np.float32)[..., 1] / 255.0
    return float((saturation > COLOUR_SATURATION).mean())


def screen(scan: Scan, distance: float | None, gate: FeatureGate | None) -> list[dict[str, str]]:
    """The gate's warnings for one scan (empty when it looks like a chest X-ray)."""
    share = colour_share(scan)
    if share > COLOUR_PIXELS:
        return [_warning(f"this looks like a colour photograph or drawing ({share:.0%} of its pixels are coloured); "
                         "X-rays are grey")]  # fmt: skip
    spread = float(np.asarray(scan.image, dtype=np.float32).std())
    if spread < FLAT_STD:
        return [_warning("this image is blank or nearly uniform: there is no anatomy to analyse")]
    if gate is not None and distance is not None and distance > gate.threshold:
        return [
            _warning(
                "this does not look like a frontal chest X-ray the model has learned: its features are further from "
                f"the training X-rays than {GATE_QUANTILE:.0%} of validation X-rays (distance {distance:.0f}, "
                f"limit {gate.threshold:.0f})"
            )
        ]
    return []


def _warning(reason: str) -> dict[str, str]:
    return {"code": CODE, "message": f"Not a chest X-ray? {reason[0].upper()}{reason[1:]}. The probabilities are "
                                     "not meaningful for it."}  # fmt: skip
