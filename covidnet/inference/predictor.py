"""Prediction: calibrated probabilities, and Grad-CAM heatmaps from the same single pass.

``load(name)`` returns one shared ``Predictor`` per backbone and weights folder. ``analyze`` gets
the probabilities and the heatmap from ONE forward and ONE backward pass, and the backward pass runs
only from the target score to the explained layer.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import nn

from covidnet.errors import CovidNetError
from covidnet.inference.cam import cam_grid, needs_gradients, overlay, resize_heatmap
from covidnet.inference.gate import FeatureGate, load_gate, screen, stage_statistics
from covidnet.io.preprocessing import build_transform, same_preprocessing
from covidnet.io.reading import Scan, ScanSource, read_scan
from covidnet.models.checkpoints import default_weights_dir, load_checkpoint
from covidnet.models.metadata import CheckpointMetadata
from covidnet.models.registry import cam_layer, get_spec, head, submodule


class Outputs(NamedTuple):
    """What one forward pass gives besides the heatmap."""

    logits: torch.Tensor
    features: torch.Tensor  # the head's input
    stages: list[torch.Tensor]  # statistics of the gate's stages, in registry order


@dataclass(frozen=True)
class Analysis:
    """One scan analysed by one backbone."""

    backbone: str
    probabilities: dict[str, float]  # calibrated, class → probability, summing to 1
    prediction: str  # the most probable class
    target: str  # the class the heatmap explains
    heatmap: np.ndarray | None  # float32 in [0, 1], shape (height, width) of the display image; None without CAM
    grid: np.ndarray | None  # the same map at the explained layer's resolution (8×8 at 128 pixels)
    image: Image.Image  # the scan's display image, which the heatmap lines up with
    cam: str | None
    seconds: float
    warnings: list[dict[str, str]] = field(default_factory=list)

    def overlay(self, opacity: float = 0.4) -> Image.Image | None:
        """The heatmap drawn over the scan (RGB), drawn on request; None without a heatmap."""
        return None if self.heatmap is None else overlay(self.image, self.heatmap, opacity=opacity)


class Predictor:
    """A trained model with its metadata (and chest X-ray gate), safe to share between threads.

    Hooks record the explained layer's activations, the head's input and the gate's stage statistics
    of every forward pass, and would record any other thread's pass too; so every pass through the
    shared model holds ``self._lock``. With 2 CPU cores, PyTorch's own threads already use the machine during a pass.
    """

    def __init__(
        self,
        model: nn.Module,
        meta: CheckpointMetadata,
        gate: FeatureGate | None = None,
        gatekeeper: Predictor | None = None,
    ) -> None:
        """``gate`` models the stages of ``gatekeeper`` (another backbone's predictor) when one is given,
        else this model's own; the gatekeeper must preprocess exactly as this model does."""
        if gatekeeper is not None and not same_preprocessing(gatekeeper.meta, meta):
            raise CovidNetError(f"{gatekeeper.backbone}'s gate needs the same preprocessing as {meta.backbone}.")
        self.meta = meta
        self.gate = gate
        self.gatekeeper = gatekeeper
        # channels_last: analysis 6-18% faster than the contiguous layout on this CPU (benchmarks/experiments.py).
        self.model = model.eval().to(memory_format=torch.channels_last)
        self._transform = build_transform(meta)
        self._lock = threading.Lock()
        spec = get_spec(meta.backbone)
        self._cam_layer = cam_layer(self.model, spec)
        # Set by hooks during each forward pass, and read only under self._lock: the head's input (the
        # penultimate features) and the statistics of the stages the chest X-ray gate models.
        self._features = torch.empty(0)
        self._stages: dict[int, torch.Tensor] = {}
        self._activations = torch.empty(0)  # the explained layer's output
        self._collect_stages = False  # stage statistics cost time; only the gate needs them
        self._stages_only = False  # set while gate_stages stops the pass after the last gate stage
        self._last_stage = len(spec.gate_layers) - 1
        head(self.model, spec).register_forward_hook(self._keep_features)
        for k, layer in enumerate(spec.gate_layers):
            submodule(self.model, layer).register_forward_hook(partial(self._keep_stage, k))
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self._cam_layer.register_forward_hook(self._keep_activations)

    def _keep_features(self, _module: nn.Module, args: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        self._features = args[0].detach().flatten(1)

    def _keep_activations(self, _module: nn.Module, _args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        """Keep the explained layer's output; with gradients on, let the backward pass stop there.

        No parameter needs a gradient at inference (all are frozen), and the layer's output re-enters the
        graph as a fresh tensor that requires one: the backward pass then runs from the target score to
        this layer only, and the gradients there are unchanged. The clone keeps in-place operations
        downstream (e.g. DenseNet's ReLU) legal.
        """
        if not torch.is_grad_enabled():
            self._activations = output
            return None
        self._activations = output.detach().requires_grad_().clone()
        return self._activations

    def _keep_stage(self, index: int, _module: nn.Module, _args: tuple, output: torch.Tensor) -> None:
        if self._collect_stages:
            self._stages[index] = stage_statistics(output)
            if self._stages_only and index == self._last_stage:
                raise _StagesCollected

    def _start_pass(self, stages: bool) -> None:
        # Own stage statistics are needed only when the gate models this backbone's own stages.
        self._collect_stages = stages and self.gatekeeper is None

    def _outputs(self, logits: torch.Tensor, x: torch.Tensor, stages: bool) -> Outputs:
        if not stages:
            staged = []
        elif self.gatekeeper is None:
            staged = [self._stages[k] for k in sorted(self._stages)]
        else:
            staged = self.gatekeeper.gate_stages(x)
        return Outputs(logits.detach(), self._features, staged)

    @property
    def backbone(self) -> str:
        return self.meta.backbone

    def tensor(self, scan: Scan) -> torch.Tensor:
        """The model input for ``scan``: a batch of one."""
        return self._transform(scan.image).unsqueeze(0)

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

    def forward_batch(self, scans: list[Scan], *, stages: bool = True) -> Outputs:
        """Raw logits, penultimate features and (with ``stages``) the gate's stage statistics for many
        scans, from one forward pass (and the gatekeeper's, when the gate is another backbone's)."""
        return self.forward_tensor(torch.cat([self.tensor(s) for s in scans]), stages=stages)

    def forward_tensor(self, batch: torch.Tensor, *, stages: bool = True) -> Outputs:
        """``forward_batch`` for an already preprocessed batch."""
        with self._lock, torch.inference_mode():
            self._start_pass(stages)
            return self._outputs(self.model(batch), batch, stages)

    def gate_stages(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """The statistics of the gate's stages for a preprocessed batch, for a backbone that shares this one's
        gate: the forward pass stops after the last of those stages (the rest of the network is not needed)."""
        with self._lock, torch.inference_mode():
            self._start_pass(True)
            self._stages_only = True
            try:
                self.model(batch)
            except _StagesCollected:
                pass
            finally:
                self._stages_only = False
            return [self._stages[k] for k in sorted(self._stages)]

    def gate_scores(self, outputs: Outputs) -> torch.Tensor | None:
        """The gate's score for each scan of a forward pass (None without a gate)."""
        return None if self.gate is None else self.gate.score(outputs.stages)

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
        started = time.perf_counter()
        scan = _as_scan(scan)
        backward = cam is not None and needs_gradients(cam)
        if target is not None and target not in self.meta.classes:
            raise CovidNetError(f"Unknown target class {target!r}. Valid: {', '.join(self.meta.classes)}.")
        x = self.tensor(scan)
        grid, stages = None, self.gate is not None
        with self._lock, torch.enable_grad() if backward else torch.inference_mode():
            self._start_pass(stages)
            logits = self.model(x)
            outputs = self._outputs(logits, x, stages)
            if cam is not None:
                index = self.meta.classes.index(target) if target else int(logits[0].argmax())
                gradients = torch.autograd.grad(logits[0, index], self._activations)[0][0] if backward else None
                grid = cam_grid(cam, self._activations.detach()[0], gradients)
        probabilities = self.probabilities(outputs.logits)[0]
        prediction = max(probabilities, key=probabilities.get)
        heatmap = resize_heatmap(grid, scan.image.size) if grid is not None else None
        scores = self.gate_scores(outputs)
        return Analysis(
            backbone=self.backbone,
            probabilities=probabilities,
            prediction=prediction,
            target=target or prediction,
            heatmap=heatmap,
            grid=grid,
            image=scan.image,
            cam=cam,
            seconds=time.perf_counter() - started,
            warnings=[*scan.warnings, *screen(scan, None if scores is None else float(scores[0]), self.gate)],
        )


class _StagesCollected(Exception):
    """Raised by the last gate stage's hook to end a pass that only needs the gate's statistics."""


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
            gate = load_gate(folder / meta.gate["file"], meta.gate["sha256"]) if meta.gate else None
            keeper = meta.gate.get("backbone", name) if meta.gate else name
            gatekeeper = load(keeper, weights_dir=folder) if keeper != name else None
            _cache[(name, folder)] = Predictor(model, meta, gate, gatekeeper)
        return _cache[(name, folder)]
