"""Checkpoint metadata: the record shipped beside every checkpoint as ``<backbone>.json``.

The metadata is the single source of truth for how a checkpoint is used: its classes and their order,
the input size, channels and normalisation that preprocessing reads, the temperature that
calibrates its probabilities, and how it was made and measured.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from covidnet.classes import CLASSES
from covidnet.errors import CheckpointError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class CheckpointMetadata:
    """Everything needed to use, verify and judge one checkpoint."""

    backbone: str
    architecture: str  # the torchvision builder, e.g. "resnet18"
    input_size: int
    sha256: str
    size_bytes: int
    parameters: int
    classes: tuple[str, ...] = CLASSES
    channels: int = 3
    normalisation: dict[str, tuple[float, ...]] = field(
        default_factory=lambda: {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    )
    resize: str = "squash"  # the whole image (or the crop) is resized to input_size × input_size
    # Empty: no crop. {"to": "lungs", "margin": m, "segmenter_sha256": …}: the lungs' bounding box, widened by m of
    # its width and height on every side, is cut out first (the whole image when no plausible lungs are found).
    crop: dict[str, Any] = field(default_factory=dict)
    # "none", or "equalize": the (cropped) image's grey-level histogram is equalised before resizing, which takes
    # away much of a scanner's or a source's contrast and brightness look.
    intensity: str = "none"
    dtype: str = "float32"  # storage type of the state dict
    init: str = "scratch"
    # For init "imagenet": where the ImageNet start came from (models/pretrained.py): {"source": "tflite", "file",
    # "sha256", "converted_sha256"} or {"source": "torchvision", "weights", "file", "sha256"}; empty otherwise.
    pretrained: dict[str, Any] = field(default_factory=dict)
    temperature: float = 1.0
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)  # the chest X-ray gate's file, sha256 and how it was fitted
    command: str = ""
    commit: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> CheckpointMetadata:
        """Metadata from its JSON record; unknown or missing fields raise ``CheckpointError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(record) - known)
        if unknown:
            raise CheckpointError(f"Checkpoint metadata has unknown fields: {', '.join(unknown)}.")
        record = dict(record)
        record["classes"] = tuple(record.get("classes", CLASSES))
        if "normalisation" in record:
            record["normalisation"] = {k: tuple(v) for k, v in record["normalisation"].items()}
        try:
            return cls(**record)
        except TypeError as e:
            raise CheckpointError(f"Checkpoint metadata is incomplete: {e}.") from None


def read_checkpoint_metadata(path: Path) -> CheckpointMetadata:
    """Read the metadata at ``path``."""
    try:
        return CheckpointMetadata.from_dict(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"Cannot read checkpoint metadata {str(path)!r}: {e}.") from None


def write_checkpoint_metadata(meta: CheckpointMetadata, path: Path) -> None:
    """Write ``meta`` to ``path`` as indented JSON."""
    path.write_text(meta.to_json())
