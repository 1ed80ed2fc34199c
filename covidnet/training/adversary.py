"""A source-adversarial head (Ganin & Lempitsky 2015): it learns to name a scan's source from the classifier's
penultimate features, and a gradient-reversal layer turns its gradient around, so the backbone learns features
that hide the source.

The adversary is told the true label too (conditional adversary, as in Long et al. 2018's CDAN, simplified to a
concatenated one-hot label): where a source holds a single label, the label alone names the source, and an
unconditional adversary would push the network to forget the disease along with the source. Only the source
information beyond the label is penalised. The head exists during training only; checkpoints do not hold it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from covidnet.classes import CLASSES


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, strength: float) -> torch.Tensor:
        ctx.strength = strength
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.strength * grad, None


def reverse_gradient(x: torch.Tensor, strength: float) -> torch.Tensor:
    """Identity forward; the gradient multiplied by ``-strength`` backward."""
    return _Reverse.apply(x, strength)


def ramp(progress: float, weight: float) -> float:
    """Ganin's schedule: the reversal's strength grows from 0 to ``weight`` as training progresses (0 → 1)."""
    return weight * (2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0)


class SourceAdversary(nn.Module):
    """Features (and the true label) → source logits, through a gradient-reversal layer."""

    def __init__(self, features: int, sources: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(features + len(CLASSES), hidden), nn.ReLU(inplace=True), nn.Linear(hidden, sources)
        )

    def forward(self, features: torch.Tensor, labels: torch.Tensor, strength: float) -> torch.Tensor:
        reversed_ = reverse_gradient(torch.flatten(features, 1), strength)
        onehot = nn.functional.one_hot(labels, len(CLASSES)).to(reversed_.dtype)
        return self.net(torch.cat([reversed_, onehot], dim=1))


class HeadInput:
    """Records the input of a model's final linear layer (the penultimate features) on each forward pass."""

    def __init__(self, head: nn.Module) -> None:
        self.features: torch.Tensor | None = None
        self._handle = head.register_forward_pre_hook(self._keep)

    def _keep(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self.features = inputs[0]

    def close(self) -> None:
        self._handle.remove()
