"""Class activation maps from one layer's activations and gradients, and heatmap overlays.

The six methods follow the ``pytorch_grad_cam`` package (v1.5.7) formula for formula, and the tests check
every one against it on every backbone. CovidNet does not import that package at run time: its import pulls
in scikit-learn, pandas, matplotlib, OpenCV and SciPy, about 180 MB of memory with a CPU-only torch, which
alone would push the app past Streamlit Community Cloud's 690 MB (measured in benchmarks/README.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageChops, ImageFilter

from covidnet.errors import UnknownCamMethodError

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


class ClassActivationMap:
    """One heatmap computation: a CAM method applied to one pass's explained-layer activations.

    Made per call; for gradient methods it runs the backward pass from the target score to the
    activations (which the predictor's feature tap made a leaf, so the pass stops there).
    """

    def __init__(self, method: str) -> None:
        check_method(method)
        self.method = method
        self.needs_gradients = method not in GRADIENT_FREE

    def __call__(self, activations: torch.Tensor, scores: torch.Tensor | None) -> list[np.ndarray]:
        """The [0, 1] grid of each image of ``activations``; ``scores`` are the explained classes' logits, one
        per image. One backward pass of their sum gives every image its own gradients: in an evaluating
        model the images of a batch do not interact."""
        gradients = torch.autograd.grad(scores.sum(), activations)[0] if self.needs_gradients else None
        return [
            cam_grid(self.method, a, None if gradients is None else gradients[k])
            for k, a in enumerate(activations.detach())
        ]


def _jet() -> np.ndarray:
    """The classic "jet" colour map as a 256 × 3 uint8 lookup table: each channel a clipped triangle, blue
    peaking at 1/4, green at 1/2, red at 3/4 (OpenCV's COLORMAP_JET draws the same ramps)."""
    x = np.linspace(0.0, 1.0, 256)[:, None]
    return np.round(255 * np.clip(1.5 - np.abs(4 * x - np.array([3, 2, 1])), 0, 1)).astype(np.uint8)


JET = _jet()


def overlay(image: Image.Image, heatmap: np.ndarray, *, opacity: float = 0.4) -> Image.Image:
    """The heatmap drawn in colour ("jet": blue low, red high) over the greyscale ``image`` (same size), RGB."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1, not {opacity}")
    base = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    colours = JET[np.uint8(255 * np.clip(heatmap, 0.0, 1.0))].astype(np.float32) / 255.0
    drawn = opacity * colours + (1.0 - opacity) * base
    return Image.fromarray(np.uint8(255 * drawn / max(float(drawn.max()), 1e-7)))


OUTLINE_RGB = (0, 255, 0)


def outline(drawn: Image.Image, mask: np.ndarray) -> Image.Image:
    """``drawn`` (RGB) with the border of the boolean ``mask`` (same size) drawn over it in green, about 0.6% of
    the longer side thick."""
    width = 2 * max(1, round(max(drawn.size) / 320)) + 1  # an odd filter size: 3 px on the 320 px display image
    region = Image.fromarray(np.uint8(mask) * 255)
    grown, shrunk = region.filter(ImageFilter.MaxFilter(width)), region.filter(ImageFilter.MinFilter(width))
    border = ImageChops.subtract(grown, shrunk)
    outlined = drawn.copy()
    outlined.paste(OUTLINE_RGB, mask=border)
    return outlined


def mass_inside(heatmap: np.ndarray, mask: np.ndarray) -> float | None:
    """The share of ``heatmap``'s mass (sum) that lies inside the boolean ``mask`` (same shape); None for an
    all-zero heatmap."""
    total = float(heatmap.sum())
    return None if total <= 0 else float(heatmap[mask].sum()) / total
