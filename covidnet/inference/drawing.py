"""Drawing a heatmap over its scan: the colour map, the overlay, the lungs' outline, and the heatmap's share inside
the lungs."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageChops, ImageFilter

from covidnet.errors import CovidNetError


def _jet() -> np.ndarray:
    """The classic "jet" colour map as a 256 × 3 uint8 lookup table: each channel a clipped triangle, blue
    peaking at 1/4, green at 1/2, red at 3/4 (OpenCV's COLORMAP_JET draws the same ramps)."""
    x = np.linspace(0.0, 1.0, 256)[:, None]
    return np.round(255 * np.clip(1.5 - np.abs(4 * x - np.array([3, 2, 1])), 0, 1)).astype(np.uint8)


JET = _jet()


def overlay(image: Image.Image, heatmap: np.ndarray, *, opacity: float = 0.4) -> Image.Image:
    """The heatmap drawn in colour ("jet": blue low, red high) over the greyscale ``image`` (same size), RGB."""
    if not 0.0 <= opacity <= 1.0:
        raise CovidNetError(f"The heatmap opacity must be between 0 and 1, not {opacity}.")
    base = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    colours = JET[np.uint8(255 * np.clip(heatmap, 0.0, 1.0))].astype(np.float32) / 255.0
    drawn = opacity * colours + (1.0 - opacity) * base
    return Image.fromarray(np.uint8(255 * drawn / max(float(drawn.max()), 1e-7)))


def colour_scale(width: int = 256, height: int = 16) -> Image.Image:
    """The overlay's colour map as a horizontal bar, low (left) to high (right): the heatmap's legend."""
    ramp = JET[np.linspace(0, 255, width).round().astype(np.uint8)]
    return Image.fromarray(np.repeat(ramp[None], height, axis=0))


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
