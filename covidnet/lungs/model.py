"""The lung segmentation network: a compact U-Net, trained from scratch.

Four resolution levels (``base``, 2×, 4×, 8× channels), two 3×3 convolutions with batch norm and ReLU per
level, max-pooling down and bilinear upsampling with skip connections up. One greyscale input channel, one
output logit map per mask convention (see ``CONVENTIONS``): the two training sources draw the lung border
differently, so each convention has its own output channel, trained only on the masks drawn that way.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# Output channel order. "full": the whole lung field, including the lung behind the heart and below the
# dome of the diaphragm (V7 Labs masks of ieee8023 images). "visible": the lung up to the heart border and
# the top of the diaphragm, the JSRT/Montgomery style (COVID-QU-Ex masks).
CONVENTIONS = ("full", "visible")
SOURCE_CONVENTION = {"ieee8023v7": "full", "covidquex": "visible"}


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class LungUNet(nn.Module):
    """(N, 1, S, S) standardised greyscale → (N, len(CONVENTIONS), S, S) logits; S a multiple of 2**(depth-1)."""

    def __init__(self, base: int = 16, depth: int = 4, out_channels: int = len(CONVENTIONS)) -> None:
        super().__init__()
        widths = [base * 2**i for i in range(depth)]
        self.down = nn.ModuleList([_double_conv(1, widths[0])])
        self.down.extend(_double_conv(widths[i - 1], widths[i]) for i in range(1, depth))
        self.up = nn.ModuleList(_double_conv(widths[i] + widths[i - 1], widths[i - 1]) for i in range(depth - 1, 0, -1))
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        return self.head(x)


def standardise(x: torch.Tensor) -> torch.Tensor:
    """Each image (…, H, W) in [0, 1] to zero mean and unit standard deviation: the network's input.

    Exposure varies widely between X-ray sources; the 0.01 keeps a uniform image at zero.
    """
    mean = x.mean(dim=(-2, -1), keepdim=True)
    std = x.std(dim=(-2, -1), keepdim=True)
    return (x - mean) / (std + 1e-2)
