"""The backbone registry: one plain entry per network, and the one function that builds a model.

torchvision builds every network (``torchvision.models.get_model``) and loads its ImageNet weights; an
entry only says which builder, how its classification head is reset to ``len(CLASSES)`` outputs (a small
function, like timm's ``reset_classifier``; the width is read from the model), where that head and the
Grad-CAM and gate layers are (paths for ``nn.Module.get_submodule``), the default input size, torchvision's
ImageNet weights for machines that have them, and whether trained weights ship in ``weights/``.

Adding a backbone is adding one ``BackboneSpec`` entry to ``BACKBONES``, plus a head function when none of
those below fits its head (tests/test_backbones.py adds efficientnet_b0 that way).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torchvision
from torch import nn

from covidnet.classes import CLASSES
from covidnet.errors import CovidNetError, UnknownBackboneError
from covidnet.models.pretrained import imagenet_start

Init = Literal["scratch", "imagenet", "empty"]


def _linear_fc(model: nn.Module, num_classes: int) -> None:
    """ResNet: ``fc`` is the linear head."""
    model.fc = nn.Linear(model.fc.in_features, num_classes)


def _linear_classifier(model: nn.Module, num_classes: int) -> None:
    """DenseNet: ``classifier`` is the linear head."""
    model.classifier = nn.Linear(model.classifier.in_features, num_classes)


def _mobilenet_classifier(model: nn.Module, num_classes: int) -> None:
    """MobileNetV2: ``classifier`` is dropout then the linear head, ``classifier.1``."""
    model.classifier[1] = nn.Linear(model.classifier[1].in_features, num_classes)


def _vgg_pooled_linear(model: nn.Module, num_classes: int) -> None:
    """VGG: the 7×7×512 → 4096 → 4096 head holds 90% of the weights; global pooling and one linear layer
    keep the checkpoint small. The width is the last convolution's channel count."""
    width = [m for m in model.features if isinstance(m, nn.Conv2d)][-1].out_channels
    model.avgpool = nn.AdaptiveAvgPool2d(1)
    model.classifier = nn.Linear(width, num_classes)


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone and where to look for its head, Grad-CAM layer and gate stages."""

    name: str
    family: str
    builder: str  # a torchvision.models builder name, for torchvision.models.get_model
    reset_head: Callable[[nn.Module, int], None]  # replaces the ImageNet head by a num_classes-way one
    head: str  # path of the final linear layer, whose input is the penultimate feature vector
    cam_layer: str  # path of the layer Grad-CAM explains
    input_size: int  # default square input side in pixels
    imagenet_weights: str  # torchvision weights enum member, e.g. "ResNet18_Weights.IMAGENET1K_V1"
    gate_layers: tuple[str, ...]  # the first three stages, whose statistics the chest X-ray gate models
    shipped: bool = True  # trained weights ship in weights/ (the tests fail when they are missing)
    tflite_source: str | None = None  # Google's ImageNet network in ../shared/pretrained, converted when torchvision's
    # own weights are not cached here (models/pretrained.py)


# Grad-CAM explains the last stage at 1/16 of the input (ResNet's layer3, DenseNet's third dense block,
# VGG's last ReLU before the final pooling, MobileNetV2's last 96-channel block), so a 128-pixel input gives
# an 8×8 heatmap grid; the stride-32 stages would give 4×4. 128 pixels is what trains all three within the CPU budget
# (measured in benchmarks/README.md).
BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            name="resnet18",
            family="ResNet",
            builder="resnet18",
            reset_head=_linear_fc,
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
            reset_head=_linear_classifier,
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
            reset_head=_vgg_pooled_linear,
            head="classifier",
            cam_layer="features.27",  # the last ReLU; features.28 is the final pooling
            input_size=128,
            imagenet_weights="VGG11_BN_Weights.IMAGENET1K_V1",
            gate_layers=("features.6", "features.13", "features.20"),  # ReLUs before pooling
        ),
        BackboneSpec(
            name="mobilenet_v2",
            family="MobileNet",
            builder="mobilenet_v2",
            reset_head=_mobilenet_classifier,
            head="classifier.1",
            cam_layer="features.13",  # the last block at stride 16; features.14 starts the stride-32 stage
            input_size=224,
            imagenet_weights="MobileNet_V2_Weights.IMAGENET1K_V1",
            gate_layers=("features.3", "features.6", "features.13"),  # the last block at strides 4, 8 and 16
            tflite_source="tf2_mobilenet_v2_1.0_224_ptq.tflite",
        ),
    )
}


# The app's first choice: the shipped backbone that did best on sources it never trained on (ieee8023 within archive,
# adult pneumonia found, ieee8023 macro AUC; docs/experiments/README.md, "Transfer learning").
DEFAULT_BACKBONE = "mobilenet_v2"


def default_backbone(names: list[str]) -> str:
    """The backbone to offer first among ``names``: ``DEFAULT_BACKBONE`` where it is one of them, else the first."""
    return DEFAULT_BACKBONE if DEFAULT_BACKBONE in names else names[0]


def backbones() -> list[str]:
    """The names of every registered backbone, in registry order."""
    return list(BACKBONES)


def shipped_backbones() -> list[str]:
    """The backbones whose trained weights ship in ``weights/``, in registry order."""
    return [name for name, spec in BACKBONES.items() if spec.shipped]


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

    ``init="imagenet"`` loads torchvision's ImageNet weights when TORCH_HOME's cache holds them, else the spec's
    converted TensorFlow Lite network (``models/pretrained.py``): CovidNet never downloads anything, so a missing
    file is an error, not a download.
    ``init="empty"`` builds on the meta device, allocating nothing, for a checkpoint to fill with
    ``load_state_dict(..., assign=True)`` (VGG's discarded ImageNet head alone would take 500 MB).

    The network is always built with its ImageNet head (torchvision's 1000-way, the TFLite 1001-way), which the
    spec's ``reset_head`` then replaces: ImageNet weights need it, and building it also for "scratch" keeps a
    seeded initialisation (and so ``covidnet train``'s results) what it was when the shipped checkpoints were trained.
    """
    spec = get_spec(name)
    if init == "empty":
        with torch.device("meta"):
            model = torchvision.models.get_model(spec.builder, weights=None)
            spec.reset_head(model, num_classes)
        return model
    if init == "scratch":
        model = torchvision.models.get_model(spec.builder, weights=None)
    elif init == "imagenet":
        model = imagenet_start(spec).model
    else:
        raise CovidNetError(f"--init must be 'scratch', 'imagenet' or a weights folder, not {init!r}.")
    spec.reset_head(model, num_classes)
    return model


def cam_layer(model: nn.Module, spec: BackboneSpec) -> nn.Module:
    """The module of ``model`` whose activations Grad-CAM explains."""
    return model.get_submodule(spec.cam_layer)


def head(model: nn.Module, spec: BackboneSpec) -> nn.Linear:
    """The final linear layer; its input is the penultimate feature vector."""
    return model.get_submodule(spec.head)
