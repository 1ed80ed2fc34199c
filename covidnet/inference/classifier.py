"""``Classifier``: a verified checkpoint ready to score scans: its network, the preprocessing its metadata
prescribes, and the temperature that calibrates its probabilities."""

from __future__ import annotations

from typing import NamedTuple

import torch

from covidnet.inference.network import Network
from covidnet.io.preprocessing import Geometry, build_transform
from covidnet.io.reading import Scan
from covidnet.lungs.segment import LungMask
from covidnet.models.metadata import CheckpointMetadata
from covidnet.models.registry import cam_layer, get_spec, head


class Prepared(NamedTuple):
    """A scan made ready for a model: its input tensor (channels, size, size), the geometry that maps a
    heatmap over that input back onto the scan's display image, and the lungs found on it (if looked for)."""

    tensor: torch.Tensor
    geometry: Geometry
    lungs: LungMask | None = None


class Outputs(NamedTuple):
    """What one forward pass gives: the logits and the head's input (the penultimate features)."""

    logits: torch.Tensor
    features: torch.Tensor


class Classifier:
    """A network with the preprocessing and temperature its metadata prescribes; safe to share between threads."""

    def __init__(self, network: Network, meta: CheckpointMetadata) -> None:
        self.network = network
        self.meta = meta
        self.preprocessing = build_transform(meta)
        spec = get_spec(meta.backbone)
        self.explained_layer = cam_layer(network.module, spec)
        self._head = head(network.module, spec)

    @property
    def backbone(self) -> str:
        return self.meta.backbone

    def prepare(self, scan: Scan, lungs: LungMask | None = None) -> Prepared:
        """The one way a scan becomes this model's input; a lung-crop model is fed the crop around ``lungs`` when
        they are plausible, else the whole image. Safe to call from several threads at once."""
        box = lungs.box if lungs is not None and lungs.plausible else None
        return Prepared(*self.preprocessing.prepare(scan.image, box), lungs)

    def forward(self, batch: torch.Tensor) -> Outputs:
        """Logits and penultimate features for a preprocessed batch (run under the caller's grad mode; hooks that
        other parts put on the network for this pass must be added while holding ``network.lock``)."""
        features: list[torch.Tensor] = []

        def keep(_module: torch.nn.Module, args: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
            features.append(args[0].detach().flatten(1))

        with self.network.lock:
            handle = self._head.register_forward_hook(keep)
            try:
                logits = self.network.module(batch)
            finally:
                handle.remove()
        return Outputs(logits, features[0])

    def probabilities(self, logits: torch.Tensor) -> list[dict[str, float]]:
        """Calibrated class probabilities, one dict per row of ``logits``."""
        probs = torch.softmax(logits.detach().float() / self.meta.temperature, dim=1)
        return [dict(zip(self.meta.classes, map(float, row), strict=True)) for row in probs]
