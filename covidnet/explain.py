"""Grad-CAM through the ``pytorch_grad_cam`` package: methods by name, and heatmap overlays."""

from __future__ import annotations

import numpy as np
from PIL import Image
from pytorch_grad_cam import (
    EigenCAM,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    XGradCAM,
)
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.image import show_cam_on_image

from covidnet.errors import UnknownCamMethodError

CAM_METHODS: dict[str, type[BaseCAM]] = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "eigencam": EigenCAM,
}


def cam_methods() -> list[str]:
    """The names of the CAM methods ``analyze`` accepts; the first is the default."""
    return list(CAM_METHODS)


def cam_class(name: str) -> type[BaseCAM]:
    """The ``pytorch_grad_cam`` class for method ``name``."""
    try:
        return CAM_METHODS[name]
    except KeyError:
        raise UnknownCamMethodError(f"Unknown CAM method {name!r}. Valid methods: {', '.join(CAM_METHODS)}.") from None


def resize_heatmap(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinearly resize a [0, 1] heatmap to ``size`` = (width, height), as float32 in [0, 1]."""
    resized = Image.fromarray(heatmap.astype(np.float32)).resize(size, Image.Resampling.BILINEAR)
    return np.clip(np.nan_to_num(np.asarray(resized, dtype=np.float32)), 0.0, 1.0)


def overlay(image: Image.Image, heatmap: np.ndarray, *, opacity: float = 0.4) -> Image.Image:
    """The heatmap drawn in colour over the greyscale ``image`` (same size), as an RGB image."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1, not {opacity}")
    base = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    drawn = show_cam_on_image(base, heatmap, use_rgb=True, image_weight=1.0 - opacity)
    return Image.fromarray(drawn)
