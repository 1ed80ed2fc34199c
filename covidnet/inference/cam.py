"""Class activation maps from one layer's activations and gradients: the six formulas and their ``Explainer``.

The six methods follow the ``pytorch_grad_cam`` package (v1.5.7) formula for formula, and the tests check
every one against it on every backbone. CovidNet does not import that package at run time: its import pulls
in scikit-learn, pandas, matplotlib, OpenCV and SciPy, about 180 MB of memory with a CPU-only torch, which
alone would push the app past Streamlit Community Cloud's 690 MB (measured in benchmarks/README.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import torch

from covidnet.errors import UnknownCamMethodError

if TYPE_CHECKING:
    from covidnet.inference.classifier import Classifier
    from covidnet.inference.explainer import Heatmaps

# Each method maps a layer's activations A and the target score's gradients G, both (channels, height,
# width), to a (height, width) map before the ReLU.
CamFormula = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SPATIAL = (1, 2)


def _weighted(weights: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    return (weights[:, None, None] * activations).sum(0)


def _gradcam(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:  # Selvaraju et al. 2017
    return _weighted(g.mean(SPATIAL), a)


def _gradcam_plus_plus(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:  # Chattopadhyay et al. 2018
    g2 = g**2
    alpha = g2 / (2 * g2 + a.sum(SPATIAL, keepdim=True) * g2 * g + 1e-6)
    alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
    return _weighted((g.clamp(min=0) * alpha).sum(SPATIAL), a)


def _xgradcam(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:  # Fu et al. 2020
    return _weighted((g * a / (a.sum(SPATIAL, keepdim=True) + 1e-7)).sum(SPATIAL), a)


def _hirescam(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:  # Draelos and Carin 2020
    return (g * a).sum(0)


def _layercam(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:  # Jiang et al. 2021
    return (g.clamp(min=0) * a).sum(0)


def _eigencam(a: torch.Tensor, _g: torch.Tensor | None) -> torch.Tensor:  # Muhammad and Yeasin 2020
    """The activations projected on their first principal component (no gradients needed)."""
    flat = a.flatten(1).T.double().numpy()  # (pixels, channels)
    flat = np.nan_to_num(flat) - np.nan_to_num(flat).mean(axis=0)
    projection = flat @ np.linalg.svd(flat, full_matrices=True)[2][0]
    return torch.from_numpy(projection.reshape(a.shape[1:])).float()


CAM_METHODS: dict[str, CamFormula] = {
    "gradcam": _gradcam,
    "gradcam++": _gradcam_plus_plus,
    "xgradcam": _xgradcam,
    "hirescam": _hirescam,
    "layercam": _layercam,
    "eigencam": _eigencam,
}
GRADIENT_FREE = frozenset({"eigencam"})


def cam_methods() -> list[str]:
    """The names of the CAM methods ``analyze`` accepts; the first is the default."""
    return list(CAM_METHODS)


def check_method(method: str) -> None:
    """Raise ``UnknownCamMethodError`` listing the valid methods unless ``method`` is one."""
    if method not in CAM_METHODS:
        raise UnknownCamMethodError(f"Unknown CAM method {method!r}. Valid methods: {', '.join(CAM_METHODS)}.")


def cam_grid(method: str, activations: torch.Tensor, gradients: torch.Tensor | None) -> np.ndarray:
    """The map of ``method`` for one image's (channels, height, width) activations and gradients,
    after the ReLU and scaled to [0, 1], at the layer's resolution, as float32."""
    check_method(method)
    with torch.no_grad():
        grid = CAM_METHODS[method](activations.float(), None if gradients is None else gradients.float())
    grid = grid.clamp(min=0).numpy().astype(np.float32)
    grid = grid - grid.min()
    return grid / (grid.max() + 1e-7)


class CamExplainer:
    """The ``Explainer`` of a CAM formula: a forward hook keeps the explained layer's output during the pass, and
    the heatmaps come from it and (for gradient methods) from one backward pass of the target scores.

    With gradients on, the hook makes the layer's output a fresh leaf that requires a gradient: no parameter needs
    one at inference (all are frozen), so the backward pass runs from the target scores to this layer only, and
    the gradients there are unchanged. The clone keeps in-place operations downstream (DenseNet's ReLU) legal.
    """

    def __init__(self, method: str) -> None:
        check_method(method)
        self.name = self.method = method
        self.needs_gradients = method not in GRADIENT_FREE

    @contextmanager
    def watch(self, classifier: Classifier, batch: torch.Tensor) -> Iterator[Heatmaps]:
        """Hook ``classifier``'s explained layer for the pass run inside this block (``batch`` is not needed)."""
        kept: list[torch.Tensor] = []

        def keep(_module: torch.nn.Module, _args: tuple, output: torch.Tensor) -> torch.Tensor | None:
            if not torch.is_grad_enabled():
                kept.append(output)
                return None
            kept.append(output.detach().requires_grad_().clone())
            return kept[-1]

        handle = classifier.explained_layer.register_forward_hook(keep)
        try:
            yield lambda logits, targets: self._grids(kept[-1], logits, targets)
        finally:
            handle.remove()

    def _grids(self, activations: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> list[np.ndarray]:
        """The [0, 1] grid of each image. One backward pass of the sum of the target scores gives every image its
        own gradients: in an evaluating model the images of a batch do not interact."""
        gradients = None
        if self.needs_gradients:
            scores = logits.gather(1, targets[:, None])[:, 0]
            gradients = torch.autograd.grad(scores.sum(), activations)[0]
        return [
            cam_grid(self.method, a, None if gradients is None else gradients[k])
            for k, a in enumerate(activations.detach())
        ]
