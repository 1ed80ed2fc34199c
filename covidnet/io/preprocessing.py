"""The one pixel path from a scan's display image to a model's input tensor.

Training, evaluation, the CLI and the app all call ``build_transform``; it reads the input size,
channels and normalisation from the checkpoint's metadata, so preprocessing travels with the weights.
Training augmentations are composed in front of the same deterministic tail.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torchvision.transforms import v2

from covidnet.models.metadata import CheckpointMetadata

Transform = Callable[[Image.Image], torch.Tensor]


def build_transform(meta: CheckpointMetadata, *, augment: Callable | None = None) -> Transform:
    """PIL greyscale image → normalised float tensor of shape (channels, size, size).

    The whole image is resized to a square (``meta.resize == "squash"``): nothing is cropped, so a
    heatmap resized back to the image's own size lines up with the anatomy.
    """
    if meta.resize != "squash":
        raise ValueError(f"unsupported resize mode {meta.resize!r}")
    size = meta.input_size
    steps = [augment] if augment is not None else []
    steps += [
        v2.Resize((size, size), interpolation=v2.InterpolationMode.BILINEAR, antialias=True),
        v2.ToImage(),
        v2.Grayscale(num_output_channels=meta.channels),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(meta.normalisation["mean"]), list(meta.normalisation["std"])),
    ]
    return v2.Compose(steps)


def same_preprocessing(a: CheckpointMetadata, b: CheckpointMetadata) -> bool:
    """Whether two checkpoints turn an image into the same input tensor."""
    fields = ("input_size", "channels", "normalisation", "resize")
    return all(getattr(a, f) == getattr(b, f) for f in fields)
