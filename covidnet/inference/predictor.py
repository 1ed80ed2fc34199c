"""``Predictor``: a trained model as the app, the CLI and evaluation use it, composed of small parts that each own
their state: a ``Classifier`` (network, preprocessing, temperature), the chest X-ray ``Gate`` (with the stages of
the network it was fitted on) and a lung ``Segmenter``. ``load(name)`` builds one from verified files, sharing the
loaded networks, gate files and segmenter (each cached until its file changes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from covidnet.errors import CheckpointError, CovidNetError
from covidnet.inference.analysis import analyze_batch
from covidnet.inference.classifier import Classifier, Prepared
from covidnet.inference.explainer import Explainer
from covidnet.inference.familiarity import Familiarity, load_familiarity
from covidnet.inference.feature_gate import FeatureGate, StageExtractor, load_gate
from covidnet.inference.gate import Gate
from covidnet.inference.network import Network
from covidnet.inference.results import Analysis
from covidnet.io.preprocessing import same_preprocessing
from covidnet.io.reading import Scan, ScanSource, read_scan
from covidnet.lungs.checkpoint import lungs_paths
from covidnet.lungs.segment import LungMask, Segmenter, load_segmenter
from covidnet.models.artifacts import LoadCache
from covidnet.models.checkpoints import checkpoint_paths, default_weights_dir, load_checkpoint
from covidnet.models.metadata import CheckpointMetadata
from covidnet.models.registry import get_spec


class Forward(NamedTuple):
    """A batch's logits, penultimate features and gate stage statistics (in stage order) from one pass."""

    logits: torch.Tensor
    features: torch.Tensor
    stages: list[torch.Tensor]


@dataclass(frozen=True)
class Predictor:
    """Classifier, gate and (optional) lung segmenter of one backbone; safe to share between threads."""

    classifier: Classifier
    gate: Gate = field(default_factory=Gate)
    segmenter: Segmenter | None = None  # None: no lung features (a lung-crop checkpoint needs its segmenter)
    familiarity: Familiarity | None = None  # the unfamiliar-film signal, when one is fitted for these weights

    def __post_init__(self) -> None:
        _check_segmenter(self.classifier.meta, self.segmenter)

    @classmethod
    def of(
        cls, model: nn.Module, meta: CheckpointMetadata, *, features: FeatureGate | None = None,
        segmenter: Segmenter | None = None,
    ) -> Predictor:  # fmt: skip
        """A predictor for ``model`` (taken over: frozen, eval mode) with a gate fitted on its own stages."""
        network = Network.own(model)
        stages = StageExtractor(network, get_spec(meta.backbone).gate_layers, meta.backbone)
        return cls(Classifier(network, meta), Gate(features, stages), segmenter)

    @property
    def backbone(self) -> str:
        return self.classifier.backbone

    @property
    def meta(self) -> CheckpointMetadata:
        return self.classifier.meta

    def prepare(self, scan: Scan, lungs: LungMask | None = None) -> Prepared:
        """The model input for ``scan`` (see ``Classifier.prepare``); a lung-crop model has the lungs found here
        when they are not given."""
        if lungs is None and self.segmenter is not None and self.classifier.preprocessing.crops_to_lungs:
            lungs = self.segmenter.segment_batch([scan.image])[0]
        return self.classifier.prepare(scan, lungs)

    def analyze(
        self, scan: Scan | ScanSource, *, cam: str | Explainer | None = "gradcam", target: str | None = None
    ) -> Analysis:
        """Probabilities, gate warnings and a heatmap for the target class (default: the prediction), from one
        forward and one backward pass (one forward pass for ``cam=None``, no heatmap, and for "eigencam"). ``cam``
        is a method's name (``cam_methods()``) or any ``Explainer``."""
        return self.analyze_batch([scan if isinstance(scan, Scan) else read_scan(scan)], cam=cam, target=target)[0]

    def analyze_batch(
        self,
        scans: Sequence[Scan],
        *,
        cam: str | Explainer | None = "gradcam",
        target: str | None = None,
        prepared: Sequence[Prepared] | None = None,
    ) -> list[Analysis]:
        """``analyze`` for many scans in one pass. ``prepared`` are the scans' ``prepare`` results, lungs attached,
        when they were made ahead (e.g. by reading threads); each analysis equals ``analyze`` of its scan alone,
        to float tolerance."""
        if prepared is None:
            lungs = self._lungs(scans)
            prepared = [self.classifier.prepare(scan, mask) for scan, mask in zip(scans, lungs, strict=True)]
        return analyze_batch(self, scans, prepared, cam=cam, target=target)

    def forward(self, scans: Sequence[Scan], lungs: Sequence[LungMask | None] | None = None) -> Forward:
        """Logits, penultimate features and the gate's stage statistics for ``scans`` (no heatmaps, no checks);
        ``lungs``, found already, spare a lung-crop model from finding them again."""
        lungs = lungs or [None] * len(scans)
        batch = torch.stack([self.prepare(s, mask).tensor for s, mask in zip(scans, lungs, strict=True)])
        network = self.classifier.network
        with network.lock, torch.inference_mode(), self.gate.watching(network) as gate_statistics:
            outputs = self.classifier.forward(batch)
        return Forward(outputs.logits, outputs.features, gate_statistics(batch))

    def _lungs(self, scans: Sequence[Scan]) -> list[LungMask | None]:
        if self.segmenter is None or not scans:
            return [None] * len(scans)
        return self.segmenter.segment_batch([scan.image for scan in scans])


def installed_segmenter(weights_dir: Path) -> Segmenter | None:
    """The verified lung segmenter in ``weights_dir``, or None when the folder has none."""
    return load_segmenter(weights_dir) if lungs_paths(weights_dir)[0].exists() else None


def _check_segmenter(meta: CheckpointMetadata, segmenter: Segmenter | None) -> None:
    """A lung-crop checkpoint must be fed crops from the segmenter it was trained with."""
    if meta.crop is None:
        return
    wanted = meta.crop.segmenter_sha256
    if segmenter is None:
        raise CheckpointError(f"{meta.backbone} was trained on lung crops, but no lung segmenter is installed.")
    if wanted and segmenter.sha256 != wanted:
        raise CheckpointError(
            f"{meta.backbone} was trained on crops from another lung segmenter (sha256 {wanted[:12]}…); "
            "install that segmenter or retrain."
        )


_networks: LoadCache[tuple[Network, CheckpointMetadata]] = LoadCache()
_gate_files: LoadCache[FeatureGate] = LoadCache()
_familiarity_files: LoadCache[Familiarity] = LoadCache()


def load_classifier(name: str, weights_dir: Path) -> Classifier:
    """The classifier of backbone ``name`` in ``weights_dir`` (its network loaded once, until its files change)."""
    return Classifier(*_network(name, Path(weights_dir)))


def ungated_predictor(name: str, weights_dir: Path, *, familiarity: bool) -> Predictor:
    """Backbone ``name``'s predictor in ``weights_dir`` without its gate (for fitting and measuring, which read every
    film), with its unfamiliar-film signal when ``familiarity`` (a fit starts without the earlier one)."""
    classifier = load_classifier(name, weights_dir)
    signal = installed_familiarity(classifier.meta, weights_dir) if familiarity else None
    return Predictor(classifier, segmenter=installed_segmenter(weights_dir), familiarity=signal)


def load(name: str, *, weights_dir: Path | None = None) -> Predictor:
    """The predictor of backbone ``name``: its verified checkpoint, its gate, its unfamiliar-film signal (when
    fitted) and the installed lung segmenter.

    Networks, gate files and the segmenter are loaded once per process and shared (a backbone that borrows another's
    gate shares that backbone's network), and loaded again when their files change. Raises ``CheckpointError`` when
    there are no trained weights or they fail verification.
    """
    folder = Path(weights_dir or default_weights_dir()).resolve()
    classifier = load_classifier(name, folder)
    meta = classifier.meta
    return Predictor(classifier, _gate(meta, folder), installed_segmenter(folder), installed_familiarity(meta, folder))


def _network(name: str, folder: Path) -> tuple[Network, CheckpointMetadata]:
    def build() -> tuple[Network, CheckpointMetadata]:
        model, meta = load_checkpoint(name, folder)
        return Network.own(model), meta

    return _networks.get((name, folder), checkpoint_paths(name, folder), build)


def _gate(meta: CheckpointMetadata, folder: Path) -> Gate:
    """The gate ``meta`` records, with the stages of the backbone it was fitted on (this one or another)."""
    if meta.gate is None:
        return Gate()
    keeper = meta.gate.backbone
    network, keeper_meta = _network(keeper, folder)
    if not same_preprocessing(keeper_meta, meta):
        raise CovidNetError(f"{keeper}'s gate needs the same preprocessing as {meta.backbone}.")
    path, sha256 = folder / meta.gate.file, meta.gate.sha256
    features = _gate_files.get((path, sha256), [path], lambda: load_gate(path, sha256))
    return Gate(features, StageExtractor(network, get_spec(keeper).gate_layers, keeper))


def installed_familiarity(meta: CheckpointMetadata, folder: Path) -> Familiarity | None:
    """The unfamiliar-film signal ``meta`` records, verified (None when none is recorded)."""
    if meta.familiarity is None:
        return None
    path, sha256 = folder / meta.familiarity.file, meta.familiarity.sha256
    return _familiarity_files.get((path, sha256), [path], lambda: load_familiarity(path, sha256))
