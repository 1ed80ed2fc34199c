"""Prediction: calibrated probabilities, and Grad-CAM heatmaps from the same single pass.

``load(name)`` returns one shared ``Predictor`` per backbone and weights folder. ``analyze`` gets
the probabilities and the heatmap from ONE forward and ONE backward pass, and the backward pass runs
only from the target score to the explained layer. When the weights folder holds the lung segmenter,
``analyze`` also finds the lungs: the gate checks them, a lung-crop model is fed the crop, and the
analysis says how much of the heatmap lies inside them.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from covidnet.errors import CheckpointError, CovidNetError
from covidnet.inference.cam import ClassActivationMap, mass_inside
from covidnet.inference.features import FeatureTap
from covidnet.inference.gate import Gate, load_gate
from covidnet.inference.results import Analysis
from covidnet.io.preprocessing import Geometry, build_transform, same_preprocessing
from covidnet.io.reading import Scan, ScanSource, read_scan
from covidnet.lungs.checkpoint import lungs_paths
from covidnet.lungs.segment import LungMask, LungSegmenter, load_segmenter
from covidnet.models.checkpoints import default_weights_dir, load_checkpoint
from covidnet.models.metadata import CheckpointMetadata
from covidnet.models.registry import cam_layer, get_spec, head
from covidnet.notices import ScanWarning, WarningCode

IN_LUNGS_ALARM = 0.5  # below this share of the heatmap's mass inside the lungs, the analysis warns


class Outputs(NamedTuple):
    """What one forward pass gives besides the heatmap."""

    logits: torch.Tensor
    features: torch.Tensor  # the head's input
    stages: list[torch.Tensor]  # statistics of the gate's stages, in registry order


class Prepared(NamedTuple):
    """A scan made ready for a model: its input tensor (channels, size, size), the geometry that maps a
    heatmap over that input back onto the scan's display image, and the lungs found on it (if looked for)."""

    tensor: torch.Tensor
    geometry: Geometry
    lungs: LungMask | None = None


class Predictor:
    """A trained model with its metadata and chest X-ray gate, safe to share between threads.

    It composes small parts: the preprocessing the metadata prescribes, a ``FeatureTap`` on its own copy
    of the model, a ``ClassActivationMap`` per call, and the ``Gate``. The gate's stage statistics come
    from this model, or from ``gatekeeper`` (another backbone's predictor with the same preprocessing)
    when the gate is that backbone's.
    """

    def __init__(
        self,
        model: nn.Module,
        meta: CheckpointMetadata,
        gate: Gate | None = None,
        gatekeeper: Predictor | None = None,
        *,
        segmenter: LungSegmenter | None = None,
        hand_over: bool = False,
    ) -> None:
        """``segmenter`` finds the lungs (None: no lung features; a lung-crop checkpoint needs the segmenter it
        was trained with). ``hand_over=True`` gives the model to the predictor (as ``from_checkpoint`` does): it
        is used as is instead of copied, which saves a copy's memory at load time."""
        if gatekeeper is not None and not same_preprocessing(gatekeeper.meta, meta):
            raise CovidNetError(f"{gatekeeper.backbone}'s gate needs the same preprocessing as {meta.backbone}.")
        _check_segmenter(meta, segmenter)
        self.meta = meta
        self.segmenter = segmenter
        self.gate = gate or Gate()
        self.gatekeeper = gatekeeper
        self.preprocessing = build_transform(meta)
        # The predictor freezes, re-lays out and hooks its model, so it works on a copy of a model it is lent.
        # channels_last: analysis 6-18% faster than the contiguous layout on this CPU (benchmarks/experiments.py).
        own = model if hand_over else copy.deepcopy(model)
        self.model = own.eval().to(memory_format=torch.channels_last).requires_grad_(False)
        spec = get_spec(meta.backbone)
        self.tap = FeatureTap(
            self.model,
            explained=cam_layer(self.model, spec),
            head=head(self.model, spec),
            stages=[self.model.get_submodule(layer) for layer in spec.gate_layers],
        )

    @classmethod
    def from_checkpoint(
        cls, name: str, weights_dir: Path, gate: Gate | None = None, gatekeeper: Predictor | None = None
    ) -> Predictor:
        """A predictor for the verified checkpoint of ``name`` in ``weights_dir`` (no cache; see ``load``)."""
        model, meta = load_checkpoint(name, weights_dir)
        return cls(model, meta, gate, gatekeeper, segmenter=installed_segmenter(weights_dir), hand_over=True)

    @property
    def backbone(self) -> str:
        return self.meta.backbone

    def find_lungs(self, scan: Scan) -> LungMask | None:
        """The lungs on ``scan`` (None without a segmenter)."""
        return None if self.segmenter is None else self.segmenter.segment(scan.image)

    def prepare(self, scan: Scan, lungs: LungMask | None = None) -> Prepared:
        """The one way a scan becomes this model's input (``tensor``, ``analyze`` and batched scoring use it);
        safe to call from several threads at once.

        A lung-crop model is fed the crop around ``lungs`` (found here when not given), or the whole image when
        no plausible lungs are found.
        """
        if self.preprocessing.crops_to_lungs and lungs is None:
            lungs = self.find_lungs(scan)
        box = lungs.box if lungs is not None and lungs.plausible else None
        return Prepared(*self.preprocessing.prepare(scan.image, box), lungs)

    def tensor(self, scan: Scan) -> torch.Tensor:
        """The model input for ``scan``: a batch of one."""
        return self.prepare(scan).tensor.unsqueeze(0)

    def probabilities(self, logits: torch.Tensor) -> list[dict[str, float]]:
        """Calibrated class probabilities, one dict per row of ``logits``."""
        probs = torch.softmax(logits.detach().float() / self.meta.temperature, dim=1)
        return [dict(zip(self.meta.classes, map(float, row), strict=True)) for row in probs]

    def predict(self, scan: Scan | ScanSource) -> dict[str, float]:
        """Calibrated probabilities for one scan (no heatmap, no gate)."""
        return self.predict_batch([_as_scan(scan)])[0]

    def predict_batch(self, scans: list[Scan]) -> list[dict[str, float]]:
        """Calibrated probabilities for many scans in one forward pass."""
        return self.probabilities(self.forward_batch(scans, stages=False).logits)

    def forward_batch(
        self, scans: list[Scan], lungs: list[LungMask | None] | None = None, *, stages: bool = True
    ) -> Outputs:
        """Raw logits, penultimate features and (with ``stages``) the gate's stage statistics for many
        scans, from one forward pass (and the gatekeeper's, when the gate is another backbone's). ``lungs``,
        found already, spare a lung-crop model from finding them again."""
        lungs = lungs or [None] * len(scans)
        batch = torch.stack([self.prepare(s, mask).tensor for s, mask in zip(scans, lungs, strict=True)])
        return self.forward_tensor(batch, stages=stages)

    def forward_tensor(self, batch: torch.Tensor, *, stages: bool = True) -> Outputs:
        """``forward_batch`` for an already preprocessed batch."""
        own_stages = stages and self.gatekeeper is None
        with torch.inference_mode(), self.tap.capture(stages=own_stages) as captured:
            logits = self.model(batch)
        return Outputs(logits.detach(), captured.features, self._stages(captured, batch, stages))

    def gate_stages(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """The statistics of the gate's stages for a preprocessed batch, for a backbone that shares this one's
        gate: the forward pass stops after the last of those stages (the rest of the network is not needed)."""
        with torch.inference_mode(), self.tap.capture(stop_after_stages=True) as captured:
            self.model(batch)
        return captured.stage_list()

    def analyze(
        self,
        scan: Scan | ScanSource,
        *,
        cam: str | None = "gradcam",
        target: str | None = None,
    ) -> Analysis:
        """Probabilities, gate warnings and a heatmap for the target class (default: the prediction),
        from one forward and one backward pass (one forward pass for ``cam=None``, no heatmap, and for the
        gradient-free "eigencam")."""
        return self.analyze_batch([_as_scan(scan)], cam=cam, target=target)[0]

    def analyze_batch(
        self,
        scans: Sequence[Scan],
        *,
        cam: str | None = "gradcam",
        target: str | None = None,
        prepared: Sequence[Prepared] | None = None,
    ) -> list[Analysis]:
        """``analyze`` for many scans at once: one forward (and one backward) pass over the batch, the gate on
        the batch. ``prepared`` are the scans' ``prepare`` results when they were made ahead (e.g. by reading
        threads); each analysis equals ``analyze`` of its scan alone, to float tolerance."""
        started = time.perf_counter()
        explainer = ClassActivationMap(cam) if cam is not None else None
        if target is not None and target not in self.meta.classes:
            raise CovidNetError(f"Unknown target class {target!r}. Valid: {', '.join(self.meta.classes)}.")
        if prepared is None:
            prepared = [self.prepare(scan, self.find_lungs(scan)) for scan in scans]
        x = torch.stack([p.tensor for p in prepared])
        backward = explainer is not None and explainer.needs_gradients
        stages = self.gate.fitted
        grids: list[np.ndarray | None] = [None] * len(scans)
        with (
            torch.enable_grad() if backward else torch.inference_mode(),
            self.tap.capture(stages=stages and self.gatekeeper is None) as captured,
        ):
            logits = self.model(x)
            if explainer is not None:
                explained = torch.full((len(scans),), self.meta.classes.index(target)) if target else logits.argmax(1)
                scores = logits.gather(1, explained[:, None])[:, 0] if backward else None
                grids = explainer(captured.activations, scores)
        probabilities = self.probabilities(logits)
        warnings = self.gate.check(scans, self._stages(captured, x, stages), [p.lungs for p in prepared])
        seconds = (time.perf_counter() - started) / len(scans)
        analyses = []
        for scan, ready, probs, grid, flags in zip(scans, prepared, probabilities, grids, warnings, strict=True):
            prediction = max(probs, key=probs.get)
            heatmap = ready.geometry.to_image(grid) if grid is not None else None
            lungs = ready.lungs
            found = lungs is not None and lungs.plausible
            in_lungs = mass_inside(heatmap, lungs.mask) if heatmap is not None and found else None
            analyses.append(
                Analysis(
                    backbone=self.backbone,
                    probabilities=probs,
                    prediction=prediction,
                    target=target or prediction,
                    heatmap=heatmap,
                    grid=grid,
                    image=scan.image,
                    cam=cam,
                    seconds=seconds,
                    warnings=[*scan.warnings, *flags, *self._lung_notes(ready.geometry, found, in_lungs)],
                    uncertain_below=self.meta.metrics.get("uncertain_below"),
                    lungs=lungs,
                    heatmap_in_lungs=in_lungs,
                )
            )
        return analyses

    def _lung_notes(self, geometry: Geometry, found: bool, in_lungs: float | None) -> list[ScanWarning]:
        """The analysis's warnings about the lungs: a lung-crop model fed the whole image, a heatmap mostly
        outside the lungs."""
        notes = []
        if self.preprocessing.crops_to_lungs and not found:
            message = (
                "No plausible lungs were found, so this model, trained on images cropped to the lungs, "
                "saw the whole image instead."
            )
            notes.append(ScanWarning(WarningCode.NOT_CROPPED, message))
        if in_lungs is not None and in_lungs < IN_LUNGS_ALARM:
            message = (
                f"Most of what drove this prediction lies outside the lungs: only {in_lungs:.0%} of the heatmap "
                "is inside them. The model may be reading something else, such as markers, text or the body outline."
            )
            notes.append(ScanWarning(WarningCode.HEATMAP_OUTSIDE_LUNGS, message, {"heatmap_in_lungs": in_lungs}))
        return notes

    def _stages(self, captured, batch: torch.Tensor, wanted: bool) -> list[torch.Tensor]:
        """The gate's stage statistics for this pass: recorded by our tap, or from the gatekeeper."""
        if not wanted:
            return []
        return captured.stage_list() if self.gatekeeper is None else self.gatekeeper.gate_stages(batch)


def installed_segmenter(weights_dir: Path) -> LungSegmenter | None:
    """The verified lung segmenter in ``weights_dir``, or None when the folder has none."""
    return load_segmenter(weights_dir) if lungs_paths(weights_dir)[0].exists() else None


def _check_segmenter(meta: CheckpointMetadata, segmenter: LungSegmenter | None) -> None:
    """A lung-crop checkpoint must be fed crops from the segmenter it was trained with."""
    if not meta.crop:
        return
    wanted = meta.crop.get("segmenter_sha256")
    if segmenter is None:
        raise CheckpointError(f"{meta.backbone} was trained on lung crops, but no lung segmenter is installed.")
    if wanted and segmenter.meta.sha256 != wanted:
        raise CheckpointError(
            f"{meta.backbone} was trained on crops from another lung segmenter (sha256 {wanted[:12]}…); "
            "install that segmenter or retrain."
        )


def _as_scan(scan: Scan | ScanSource) -> Scan:
    return scan if isinstance(scan, Scan) else read_scan(scan)


_cache: dict[tuple[str, Path], Predictor] = {}
_cache_lock = threading.RLock()  # re-entered when a backbone's gate lives with another backbone


def load(name: str, *, weights_dir: Path | None = None) -> Predictor:
    """The shared predictor for backbone ``name`` (loaded once per process and weights folder).

    Raises ``CheckpointError`` when there are no trained weights or they fail verification.
    """
    folder = Path(weights_dir or default_weights_dir()).resolve()
    with _cache_lock:
        if (name, folder) not in _cache:
            model, meta = load_checkpoint(name, folder)
            gate = Gate(load_gate(folder / meta.gate["file"], meta.gate["sha256"]) if meta.gate else None)
            keeper = meta.gate.get("backbone", name) if meta.gate else name
            gatekeeper = load(keeper, weights_dir=folder) if keeper != name else None
            segmenter = installed_segmenter(folder)
            _cache[(name, folder)] = Predictor(model, meta, gate, gatekeeper, segmenter=segmenter, hand_over=True)
        return _cache[(name, folder)]
