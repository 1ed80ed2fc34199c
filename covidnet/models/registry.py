"""The backbone registry: one plain entry per network, and the one function that builds a model.

Adding a backbone is adding one entry to ``BACKBONES``. Every entry names a torchvision builder,
how its classification head is replaced (the width is read from the model), the Grad-CAM target
layer, the default input size and torchvision's ImageNet weights for machines that have them.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torchvision
from torch import nn

from covidnet.classes import CLASSES
from covidnet.errors import CovidNetError, UnknownBackboneError

HeadKind = Literal["fc", "classifier", "vgg"]
Init = Literal["scratch", "imagenet", "empty"]


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone and where to look for its Grad-CAM."""

    name: str
    family: str
    builder: str  # a function in torchvision.models
    head: HeadKind  # how the ImageNet head is replaced by a len(CLASSES)-way one
    cam_layer: str  # dotted path inside the model; negative integers index from the end
    input_size: int  # default square input side in pixels
    imagenet_weights: str  # torchvision weights enum member, e.g. "ResNet18_Weights.IMAGENET1K_V1"
    gate_layers: tuple[str, ...]  # the first three stages, whose statistics the chest X-ray gate models


# Grad-CAM explains the last stage at 1/16 of the input (ResNet's layer3, DenseNet's third dense block,
# VGG's last ReLU before the final pooling), so a 128-pixel input gives an 8×8 heatmap grid; the
# stride-32 stages would give 4×4. 128 pixels is what trains all three within the CPU budget
# (measured in benchmarks/README.md).
BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            name="resnet18",
            family="ResNet",
            builder="resnet18",
            head="fc",
            cam_layer="layer3",
            input_size=128,
            imagenet_weights="ResNet18_Weights.IMAGENET1K_V1",
            gate_layers=("layer1", "layer2", "layer3"),
        ),
        BackboneSpec(
            name="densenet121",
            family="DenseNet",
            builder="densenet121",
            head="classifier",
            cam_layer="features.denseblock3",
            input_size=128,
            imagenet_weights="DenseNet121_Weights.IMAGENET1K_V1",
            gate_layers=("features.transition1", "features.transition2", "features.transition3"),
        ),
        BackboneSpec(
            name="vgg11_bn",
            family="VGG",
            builder="vgg11_bn",
            head="vgg",
            cam_layer="features.-2",
            input_size=128,
            imagenet_weights="VGG11_BN_Weights.IMAGENET1K_V1",
            gate_layers=("features.6", "features.13", "features.20"),  # ReLUs before pooling
        ),
    )
}


def backbones() -> list[str]:
    """The names of every registered backbone, in registry order."""
    return list(BACKBONES)


def get_spec(name: str) -> BackboneSpec:
    """The registry entry for ``name``; an unknown name raises an error listing the valid ones."""
    try:
        return BACKBONES[name]
    except KeyError:
        close = difflib.get_close_matches(name, BACKBONES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownBackboneError(
            f"Unknown backbone {name!r}. Valid backbones: {', '.join(BACKBONES)}.{hint}"
        ) from None


def build_model(name: str, *, init: Init = "scratch", num_classes: int = len(CLASSES)) -> nn.Module:
    """Build backbone ``name`` with a ``num_classes``-way head.

    ``init="imagenet"`` loads torchvision's ImageNet weights, which must already be in TORCH_HOME's
    cache: CovidNet never downloads anything, so a missing file is an error, not a download.
    ``init="empty"`` builds on the meta device, allocating nothing, for a checkpoint to fill with
    ``load_state_dict(..., assign=True)`` (VGG's discarded ImageNet head alone would take 500 MB).
    """
    spec = get_spec(name)
    builder = getattr(torchvision.models, spec.builder)
    if init == "empty":
        with torch.device("meta"):
            model = builder(weights=None)
            _replace_head(model, spec.head, num_classes)
        return model
    if init == "scratch":
        model = builder(weights=None)
    elif init == "imagenet":
        model = builder(weights=_cached_imagenet_weights(spec))
    else:
        raise ValueError(f"init must be 'scratch', 'imagenet' or 'empty', not {init!r}")
    _replace_head(model, spec.head, num_classes)
    return model


def cam_layer(model: nn.Module, spec: BackboneSpec) -> nn.Module:
    """The module of ``model`` whose activations Grad-CAM explains."""
    return submodule(model, spec.cam_layer)


def submodule(model: nn.Module, path: str) -> nn.Module:
    """The module at a dotted ``path``; negative integers index sequences from the end."""
    module = model
    for part in path.split("."):
        module = module[int(part)] if part.lstrip("-").isdigit() else getattr(module, part)
    return module


def head(model: nn.Module, spec: BackboneSpec) -> nn.Linear:
    """The final linear layer; its input is the penultimate feature vector."""
    return model.fc if spec.head == "fc" else model.classifier


def _replace_head(model: nn.Module, head: HeadKind, num_classes: int) -> None:
    if head == "fc":
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    elif head == "classifier":
        model.classifier = nn.Linear(model.classifier.in_features, num_classes)
    elif head == "vgg":
        # VGG's 7×7×512 → 4096 → 4096 head holds 90% of its weights; global pooling and one linear
        # layer keep the checkpoint small. The width is the last convolution's channel count.
        width = [m for m in model.features if isinstance(m, nn.Conv2d)][-1].out_channels
        model.avgpool = nn.AdaptiveAvgPool2d(1)
        model.classifier = nn.Linear(width, num_classes)
    else:
        raise ValueError(f"unknown head kind {head!r}")


def _cached_imagenet_weights(spec: BackboneSpec) -> torchvision.models.WeightsEnum:
    weights = torchvision.models.get_weight(spec.imagenet_weights)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    if not cached.exists():
        raise CovidNetError(
            f"ImageNet weights for {spec.name} are not on this machine (looked for {cached}). "
            "Put torchvision's file there or set TORCH_HOME, or train with --init scratch."
        )
    return weights
