"""The feature-distance part of the chest X-ray gate: per-stage statistics of a network's activations, the
Mahalanobis model fitted on the training images' statistics (Lee et al. 2018), its file, and ``StageExtractor``,
which records those statistics from the network the gate was fitted on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from covidnet.errors import CheckpointError
from covidnet.inference.network import Network
from covidnet.models.artifacts import Artifact, save_tensors

GATE_QUANTILE = 0.99  # share of validation X-rays that pass each stage and the whole gate


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
    return save_tensors(state, path)


def load_gate(path: Path, sha256: str) -> FeatureGate:
    """Verify and load a gate file (tensors only)."""
    state = Artifact(path, sha256, "its checkpoint's metadata").load_tensors()
    try:
        return FeatureGate(
            means=tuple(m.double() for m in state["means"]),
            precisions=tuple(p.double() for p in state["precisions"]),
            scales=tuple(state["scales"].tolist()),
            threshold=float(state["threshold"]),
        )
    except (KeyError, TypeError, AttributeError):
        raise CheckpointError(f"{path.name} is not a gate file of this CovidNet version; refit it.") from None


class _StagesCollected(Exception):
    """Raised by the last stage's hook to end a pass that needs only the gate's statistics."""


class RecordedStages:
    """The stage statistics one pass recorded, by stage index."""

    def __init__(self) -> None:
        self.by_stage: dict[int, torch.Tensor] = {}

    def statistics(self) -> list[torch.Tensor]:
        """The recorded statistics in stage order."""
        return [self.by_stage[k] for k in sorted(self.by_stage)]


@dataclass(frozen=True)
class StageExtractor:
    """The stages (layer names, in order) of the network a gate was fitted on."""

    network: Network
    layers: tuple[str, ...]
    backbone: str  # whose network it is

    @contextmanager
    def recording(self, *, stop_after_last: bool = False) -> Iterator[RecordedStages]:
        """Hooks that record each stage's statistics during the pass run inside this block (the caller holds the
        network's lock); ``stop_after_last`` ends the pass after the last stage (catch ``_StagesCollected``)."""
        recorded = RecordedStages()
        last = len(self.layers) - 1

        def hook(index: int):
            def keep(_module: torch.nn.Module, _args: tuple, output: torch.Tensor) -> None:
                recorded.by_stage[index] = stage_statistics(output)
                if stop_after_last and index == last:
                    raise _StagesCollected

            return keep

        handles = [self.network.layer(name).register_forward_hook(hook(k)) for k, name in enumerate(self.layers)]
        try:
            yield recorded
        finally:
            for handle in handles:
                handle.remove()

    def extract(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """The stages' statistics for a preprocessed batch, from a pass that stops after the last stage."""
        with (
            self.network.lock,
            torch.inference_mode(),
            self.recording(stop_after_last=True) as recorded,
            suppress(_StagesCollected),
        ):
            self.network.module(batch)
        return recorded.statistics()
