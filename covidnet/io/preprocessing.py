"""The one pixel path from a scan's display image to a model's input tensor, and back for heatmaps.

Training, evaluation, the CLI and the app all call ``build_transform``; it reads the input size,
channels and normalisation from the checkpoint's metadata, so preprocessing travels with the weights.
Training augmentations are composed in front of the same deterministic tail. Like MONAI's invertible
transforms, ``Preprocessing.prepare`` also returns the ``Geometry`` it applied (which part of the image
fills the input), and the geometry maps a heatmap over the input back onto the display image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms import v2

from covidnet.errors import CheckpointError
from covidnet.models.metadata import CheckpointMetadata

Box = tuple[int, int, int, int]  # (left, top, right, bottom) in display-image pixels
# The intensity steps a checkpoint can prescribe (``CheckpointMetadata.intensity``), on the greyscale image.
INTENSITY_STEPS: dict[str, Callable[[Image.Image], Image.Image] | None] = {"none": None, "equalize": ImageOps.equalize}


@dataclass(frozen=True)
class Geometry:
    """What preprocessing did to one display image: the box of it that was resized to fill the input."""

    image_size: tuple[int, int]  # (width, height) of the display image
    box: Box  # the whole image for "squash"
    input_size: int

    def to_image(self, heatmap: np.ndarray) -> np.ndarray:
        """A [0, 1] map over the model's input (any resolution) on the display image: (height, width), float32.

        Bilinear inside the box; zero outside it.
        """
        left, top, right, bottom = self.box
        inside = resize_heatmap(heatmap, (right - left, bottom - top))
        if self.box == (0, 0, *self.image_size):
            return inside
        width, height = self.image_size
        full = np.zeros((height, width), dtype=np.float32)
        full[top:bottom, left:right] = inside
        return full


class Preprocessing:
    """PIL greyscale image → normalised float tensor of shape (channels, size, size), with its geometry.

    For a checkpoint trained on lung crops (``meta.crop.to == "lungs"``), the lungs' bounding box widened
    by ``meta.crop.margin`` is cut out first; without a lung box, or for other checkpoints, the box is the
    whole image. Training augmentation (if any) comes next, then the intensity step (``meta.intensity ==
    "equalize"``: histogram equalisation), then the box is resized to a square (``meta.resize == "squash"``).
    """

    def __init__(self, meta: CheckpointMetadata, *, augment: Callable | None = None) -> None:
        if meta.resize != "squash":
            raise CheckpointError(
                f"{meta.backbone}'s metadata asks for resize {meta.resize!r}; this CovidNet knows 'squash'."
            )
        if meta.crop is not None and meta.crop.to != "lungs":
            raise CheckpointError(
                f"{meta.backbone}'s metadata asks for crop {meta.crop!r}; this CovidNet crops to the lungs only."
            )
        if meta.intensity not in INTENSITY_STEPS:
            raise CheckpointError(
                f"{meta.backbone}'s metadata asks for intensity step {meta.intensity!r}; this CovidNet knows "
                f"{', '.join(INTENSITY_STEPS)}."
            )
        self.input_size = meta.input_size
        self.crops_to_lungs = meta.crop is not None
        self._margin = meta.crop.margin if meta.crop is not None else 0.0
        self._augment = augment
        self._intensity = INTENSITY_STEPS[meta.intensity]
        self._tail = v2.Compose(
            [
                v2.Resize(
                    (meta.input_size, meta.input_size), interpolation=v2.InterpolationMode.BILINEAR, antialias=True
                ),
                v2.ToImage(),
                v2.Grayscale(num_output_channels=meta.channels),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(list(meta.normalisation["mean"]), list(meta.normalisation["std"])),
            ]
        )

    def __call__(self, image: Image.Image, lung_box: Box | None = None) -> torch.Tensor:
        """The input tensor only (what training and evaluation batches need)."""
        return self.prepare(image, lung_box)[0]

    def prepare(self, image: Image.Image, lung_box: Box | None = None) -> tuple[torch.Tensor, Geometry]:
        """The input tensor and the geometry that maps a heatmap back onto ``image``.

        ``lung_box`` is the bounding box of plausible lungs on ``image`` (None: none found); only a checkpoint
        trained on lung crops uses it.
        """
        size = image.size
        box = (0, 0, *size)
        if self.crops_to_lungs and lung_box is not None:
            box = widen(lung_box, self._margin, size)
            image = image.crop(box)
        if self._augment is not None:
            image = self._augment(image)
        if self._intensity is not None:
            image = self._intensity(image)
        return self._tail(image), Geometry(size, box, self.input_size)


def build_transform(meta: CheckpointMetadata, *, augment: Callable | None = None) -> Preprocessing:
    """The preprocessing ``meta`` prescribes, with optional training augmentation in front."""
    return Preprocessing(meta, augment=augment)


def widen(box: Box, margin: float, size: tuple[int, int]) -> Box:
    """``box`` widened by ``margin`` of its width and height on every side, clipped to an image of ``size``."""
    left, top, right, bottom = box
    dx, dy = round(margin * (right - left)), round(margin * (bottom - top))
    width, height = size
    return max(0, left - dx), max(0, top - dy), min(width, right + dx), min(height, bottom + dy)


def same_preprocessing(a: CheckpointMetadata, b: CheckpointMetadata) -> bool:
    """Whether two checkpoints turn an image into the same input tensor."""
    fields = ("input_size", "channels", "normalisation", "resize", "crop", "intensity")
    return all(getattr(a, f) == getattr(b, f) for f in fields)


def resize_heatmap(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinearly resize a [0, 1] heatmap to ``size`` = (width, height), as float32 in [0, 1]."""
    resized = Image.fromarray(heatmap.astype(np.float32)).resize(size, Image.Resampling.BILINEAR)
    return np.clip(np.nan_to_num(np.asarray(resized, dtype=np.float32)), 0.0, 1.0)
