"""Feature taps: the tensors one forward pass needs, recorded by hooks that one object owns.

A ``FeatureTap`` hooks three kinds of layer of a model it is given: the layer Grad-CAM explains, the
classification head (whose input is the penultimate feature vector) and the stages whose statistics the
chest X-ray gate models. Like pytorch-grad-cam's ``ActivationsAndGradients`` it keeps its hook handles
and removes them on ``close()`` (or at the end of a ``with`` block). Each pass runs inside ``capture()``,
which holds a lock, because the hooks of a shared model would otherwise record another thread's pass.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import torch
from torch import nn

from covidnet.inference.gate import stage_statistics


@dataclass
class Capture:
    """What the hooks recorded during one pass."""

    activations: torch.Tensor | None = None  # the explained layer's output (a leaf when gradients are on)
    features: torch.Tensor | None = None  # the head's input, flattened: the penultimate features
    stages: dict[int, torch.Tensor] = field(default_factory=dict)  # stage index → (N, 2·C) statistics
    want_stages: bool = False
    stop_after_stages: bool = False

    def stage_list(self) -> list[torch.Tensor]:
        """The recorded stage statistics in stage order."""
        return [self.stages[k] for k in sorted(self.stages)]


class _StagesCollected(Exception):
    """Raised by the last stage's hook to end a pass that needs only the gate's statistics."""


class FeatureTap:
    """Hooks on ``model`` that record a ``Capture`` per pass; ``close()`` removes them."""

    def __init__(self, model: nn.Module, *, explained: nn.Module, head: nn.Module, stages: Sequence[nn.Module]) -> None:
        self._lock = threading.Lock()
        self._capture = Capture()
        self._last_stage = len(stages) - 1
        self._handles = [
            explained.register_forward_hook(self._keep_activations),
            head.register_forward_hook(self._keep_features),
            *(stage.register_forward_hook(self._stage_hook(k)) for k, stage in enumerate(stages)),
        ]

    @contextmanager
    def capture(self, *, stages: bool = False, stop_after_stages: bool = False) -> Iterator[Capture]:
        """Run one pass inside this block; the yielded ``Capture`` fills in as the model runs.

        ``stages`` records the gate stages' statistics; ``stop_after_stages`` also ends the forward pass
        right after the last of them (the rest of the network is not needed).
        """
        with self._lock:
            self._capture = Capture(want_stages=stages or stop_after_stages, stop_after_stages=stop_after_stages)
            try:
                with suppress(_StagesCollected):
                    yield self._capture
            finally:  # outside a capture the hooks keep nothing and never end a pass
                self._capture = Capture()

    def close(self) -> None:
        """Remove every hook this tap registered."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> FeatureTap:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _keep_activations(self, _module: nn.Module, _args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        """Keep the explained layer's output; with gradients on, let the backward pass stop there.

        No parameter needs a gradient at inference (all are frozen), and the layer's output re-enters the
        graph as a fresh tensor that requires one: the backward pass then runs from the target score to
        this layer only, and the gradients there are unchanged. The clone keeps in-place operations
        downstream (e.g. DenseNet's ReLU) legal.
        """
        if not torch.is_grad_enabled():
            self._capture.activations = output
            return None
        self._capture.activations = output.detach().requires_grad_().clone()
        return self._capture.activations

    def _keep_features(self, _module: nn.Module, args: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        self._capture.features = args[0].detach().flatten(1)

    def _stage_hook(self, index: int):
        def keep_stage(_module: nn.Module, _args: tuple, output: torch.Tensor) -> None:
            capture = self._capture
            if capture.want_stages:
                capture.stages[index] = stage_statistics(output)
                if capture.stop_after_stages and index == self._last_stage:
                    raise _StagesCollected

        return keep_stage
