"""Training augmentation: small geometric and exposure changes that keep a radiograph plausible (small
rotation, translation and scale; brightness, contrast and gamma; no colour, no flips). It runs in front
of the deterministic preprocessing, on the display image."""

from __future__ import annotations

import random

from torch import nn
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F


class RandomGamma(nn.Module):
    """Gamma correction with a random exponent, as exposure differs between X-ray machines."""

    def __init__(self, low: float = 0.8, high: float = 1.25) -> None:
        super().__init__()
        self.low, self.high = low, high

    def forward(self, image):
        return F.adjust_gamma(image, random.uniform(self.low, self.high))


def xray_augmentation() -> v2.Compose:
    """Small geometric and exposure changes that keep a radiograph plausible."""
    return v2.Compose(
        [
            v2.RandomAffine(degrees=7, translate=(0.06, 0.06), scale=(0.9, 1.1)),
            v2.ColorJitter(brightness=0.25, contrast=0.25),
            RandomGamma(),
        ]
    )
