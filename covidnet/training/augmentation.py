"""Training augmentation, on the display image in front of the deterministic preprocessing.

``xray_augmentation``: small geometric and exposure changes that keep a radiograph plausible (small rotation,
translation and scale; brightness, contrast and gamma; no colour, no flips).

``source_cue_augmentation`` adds changes against the cues that tell one data source from another rather than one
disease from another: resolution (several sources were stored at 224–299 px and upscaled, so they are blurrier),
sharpness, noise, and the borders and corners where sources put their text, markers and black frames.
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw
from torch import nn
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from covidnet.errors import TrainingSetupError

AUGMENTATIONS = ("xray", "source-cues")


class RandomGamma(nn.Module):
    """Gamma correction with a random exponent, as exposure differs between X-ray machines."""

    def __init__(self, low: float = 0.8, high: float = 1.25) -> None:
        super().__init__()
        self.low, self.high = low, high

    def forward(self, image):
        return F.adjust_gamma(image, random.uniform(self.low, self.high))


class ResolutionJitter(nn.Module):
    """Down- and back up-sampling to a random longer side (px), as a source stored at low resolution looks."""

    def __init__(self, low: int = 128, high: int = 320) -> None:
        super().__init__()
        self.low, self.high = low, high

    def forward(self, image: Image.Image) -> Image.Image:
        side = random.randint(self.low, self.high)
        scale = side / max(image.size)
        if scale >= 1:
            return image
        small = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        return small.resize(image.size, Image.Resampling.BILINEAR)


class GaussianNoise(nn.Module):
    """Additive Gaussian noise with a random standard deviation (grey levels), as detectors differ."""

    def __init__(self, max_sigma: float = 8.0) -> None:
        super().__init__()
        self.max_sigma = max_sigma

    def forward(self, image: Image.Image) -> Image.Image:
        sigma = random.uniform(0, self.max_sigma)
        noise = np.random.default_rng(random.getrandbits(32)).normal(0, sigma, (image.height, image.width))
        noisy = np.asarray(image, dtype=np.float32) + noise
        return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), mode="L")


class BorderErasing(nn.Module):
    """Paints a random border strip or corner block black or white: where sources differ in frames, text and
    markers, the network learns to ignore what is there."""

    def __init__(self, max_share: float = 0.15) -> None:
        super().__init__()
        self.max_share = max_share

    def forward(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        w, h = (max(1, round(random.uniform(0.03, self.max_share) * side)) for side in (width, height))
        left = random.choice((0, width - w))
        top = random.choice((0, height - h))
        boxes = {
            "corner": (left, top, left + w, top + h),
            "side": (left, 0, left + w, height),
            "edge": (0, top, width, top + h),
        }
        erased = image.copy()
        ImageDraw.Draw(erased).rectangle(boxes[random.choice(list(boxes))], fill=random.choice((0, 255)))
        return erased


def _small_affine() -> v2.RandomAffine:
    return v2.RandomAffine(degrees=7, translate=(0.06, 0.06), scale=(0.9, 1.1))


def _exposure() -> list[nn.Module]:
    return [v2.ColorJitter(brightness=0.25, contrast=0.25), RandomGamma()]


def xray_augmentation() -> v2.Compose:
    """Small geometric and exposure changes that keep a radiograph plausible."""
    return v2.Compose([_small_affine(), *_exposure()])


def source_cue_augmentation() -> v2.Compose:
    """``xray_augmentation`` plus resolution jitter, blur or sharpening, noise and border/corner erasing."""
    return v2.Compose(
        [
            v2.RandomApply([BorderErasing()], p=0.5),
            _small_affine(),
            v2.RandomApply([ResolutionJitter()], p=0.5),
            v2.RandomChoice(
                [v2.GaussianBlur(5, sigma=(0.1, 1.5)), v2.RandomAdjustSharpness(2.0, p=1.0), nn.Identity()]
            ),
            *_exposure(),
            v2.RandomApply([GaussianNoise()], p=0.5),
        ]
    )


def augmentation(name: str) -> v2.Compose:
    """The training augmentation called ``name`` (one of ``AUGMENTATIONS``)."""
    if name == "xray":
        return xray_augmentation()
    if name == "source-cues":
        return source_cue_augmentation()
    raise TrainingSetupError(f"unknown augmentation {name!r}; choose from {', '.join(AUGMENTATIONS)}")
