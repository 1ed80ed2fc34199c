"""Where an ImageNet start comes from, and the record of it that a checkpoint's metadata keeps.

Two sources, tried in this order; nothing is ever downloaded:
1. torchvision's own ImageNet weights, when TORCH_HOME's cache already holds the file (machines that have it);
2. for a backbone with a TensorFlow Lite source (``BackboneSpec.tflite_source``), Google's ImageNet network in
   ``$COVIDNET_PRETRAINED`` (default ``../shared/pretrained`` beside the repository), sha256-checked, converted by
   ``tflite_import`` once and cached as a state dict (``$COVIDNET_CACHE``, default ``~/.cache/covidnet``) whose own
   sha256 is checked before every ``weights_only`` load.

The two expect different pixels: torchvision's weights ImageNet's mean and std, the TFLite ones [-1, 1]. The
normalisation travels in ``ImagenetStart`` into the checkpoint's metadata, and so into preprocessing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torchvision
from torch import nn

from covidnet.errors import CovidNetError
from covidnet.models.artifacts import save_tensors, sha256_of
from covidnet.models.metadata import IMAGENET_MEAN, IMAGENET_STD, CheckpointMetadata, Pretrained, listed
from covidnet.models.tflite_import import (
    IMAGENET_OUTPUTS,
    TFLITE_NORMALISATION,
    convert_mobilenet_v2,
    restore_batch_norm,
)

if TYPE_CHECKING:
    from covidnet.models.registry import BackboneSpec

PRETRAINED_ENV, CACHE_ENV = "COVIDNET_PRETRAINED", "COVIDNET_CACHE"
# The TensorFlow Lite files CovidNet converts, by the sha256 their provenance gives (../shared/pretrained/README.md).
TFLITE_FILES = {
    "tf2_mobilenet_v2_1.0_224_ptq.tflite": "5d3137241276e79c86d14a74fe43581398ae0e815191d3dba45495b810840e8c",
    "mobilenet_v2_1.0_224_quant.tflite": "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776",
}


@dataclass(frozen=True)
class ImagenetStart:
    """An ImageNet-pretrained network (with its ImageNet head), the pixels it expects, and where it came from."""

    model: nn.Module
    normalisation: dict[str, tuple[float, ...]]
    record: Pretrained  # the metadata's record of where it came from

    @property
    def description(self) -> str:
        """How the model card names the start, e.g. "converted from Google's tf2_mobilenet_v2_….tflite"."""
        return describe(self.record)


def describe(record: Pretrained) -> str:
    """A ``pretrained`` metadata record in words."""
    if record.source == "tflite":
        return f"converted from Google's TensorFlow Lite {record.file}, sha256 {record.sha256[:12]}…"
    return f"torchvision's {record.weights}"


def imagenet_start(spec: BackboneSpec) -> ImagenetStart:
    """The ImageNet start for ``spec``: torchvision's cached weights, else its converted TFLite source."""
    weights = torchvision.models.get_weight(spec.imagenet_weights)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    if cached.exists():
        model = torchvision.models.get_model(spec.builder, weights=weights)
        record = Pretrained("torchvision", cached.name, sha256_of(cached), weights=spec.imagenet_weights)
        return ImagenetStart(model, {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}, record)
    if spec.tflite_source is None:
        raise CovidNetError(
            f"ImageNet weights for {spec.name} are not on this machine (looked for {cached}). "
            "Put torchvision's file there or set TORCH_HOME, or train with --init scratch."
        )
    source = pretrained_dir() / spec.tflite_source
    state, record = converted_state(source)
    model = torchvision.models.get_model(spec.builder, weights=None, num_classes=IMAGENET_OUTPUTS)
    model.load_state_dict(state)
    return ImagenetStart(model, dict(TFLITE_NORMALISATION), record)


def pretrained_dir() -> Path:
    """``$COVIDNET_PRETRAINED``, else ``../shared/pretrained`` beside the repository."""
    return Path(os.environ.get(PRETRAINED_ENV) or Path(__file__).resolve().parents[3] / "shared" / "pretrained")


def converted_state(source: Path) -> tuple[dict[str, torch.Tensor], Pretrained]:
    """The converted state dict of a TFLite file (from the cache when its sha256 holds) and its record."""
    if not source.exists():
        raise CovidNetError(
            f"No ImageNet start for this backbone here: neither torchvision's cached weights nor {source} exist. "
            f"Point ${PRETRAINED_ENV} at the folder holding {source.name}, or train with --init scratch."
        )
    digest = sha256_of(source)
    if TFLITE_FILES.get(source.name) != digest:
        raise CovidNetError(f"{source} is not the file CovidNet knows by that name (sha256 {digest[:12]}…); "
                            "it was not converted.")  # fmt: skip
    cache = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "covidnet")
    converted, sidecar = cache / f"{source.stem}.{digest[:16]}.pt", cache / f"{source.stem}.{digest[:16]}.json"
    cached_ok = converted.exists() and sidecar.exists()
    if cached_ok and json.loads(sidecar.read_text()).get("sha256") == sha256_of(converted):
        state = torch.load(converted, map_location="cpu", weights_only=True)
    else:
        state = _trainable(convert_mobilenet_v2(source), source.parent / "test_images")
        written = save_tensors(state, converted)  # atomic: a half-written cache file is never read
        sidecar.write_text(json.dumps({"source": source.name, "source_sha256": digest, "sha256": written}))
    converted_sha256 = json.loads(sidecar.read_text())["sha256"]
    return state, Pretrained("tflite", source.name, digest, converted_sha256=converted_sha256)


def _trainable(state: dict[str, torch.Tensor], photos: Path) -> dict[str, torch.Tensor]:
    """The converted state with batch-norm statistics measured on the photos beside the TFLite files, so that
    fine-tuning starts from the pretrained network (``tflite_import.restore_batch_norm``)."""
    from PIL import Image

    files = sorted(photos.glob("*"))
    if not files:
        raise CovidNetError(f"No photos in {photos} to measure the converted network's batch-norm statistics on.")
    size = 224
    pixels = [np.asarray(Image.open(f).convert("RGB").resize((size, size)), dtype=np.float32) for f in files]
    images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2) / 127.5 - 1
    images = torch.cat([images, images.flip(-1)])  # mirrored copies: twice the positions to measure on
    model = torchvision.models.mobilenet_v2(weights=None, num_classes=IMAGENET_OUTPUTS)
    model.load_state_dict(state)
    return restore_batch_norm(model, images).state_dict()


def how_started(metas: list[CheckpointMetadata]) -> str:
    """One sentence on how the checkpoints' training started, read from their metadata (never assumed): e.g.
    "resnet18 and vgg11_bn were trained from scratch; mobilenet_v2 was fine-tuned from ImageNet weights converted
    from Google's TensorFlow Lite …"."""
    groups: dict[str, list[str]] = {}
    for meta in metas:
        if meta.init == "imagenet" and meta.pretrained is not None:
            start = f"fine-tuned from ImageNet-pretrained weights ({describe(meta.pretrained)})"
        elif meta.init.startswith("checkpoint:"):
            start = f"fine-tuned from an earlier CovidNet checkpoint ({meta.init.removeprefix('checkpoint:')})"
        else:
            start = {"scratch": "trained from scratch", "imagenet": "fine-tuned from ImageNet weights"}.get(
                meta.init, f"started from {meta.init}"
            )
        groups.setdefault(start, []).append(meta.backbone)
    parts = [f"{listed(names)} {'was' if len(names) == 1 else 'were'} {start}" for start, names in groups.items()]
    return "; ".join(parts)
