"""Checkpoint metadata: the record shipped beside every checkpoint as ``<backbone>.json``.

The metadata is the single source of truth for how a checkpoint is used: the task (its classes, their order, the
class of interest), the input size, channels and normalisation that preprocessing reads, the lung crop, the
temperature that calibrates its probabilities, the "uncertain" threshold, its chest X-ray gate, and how it was
started, made and measured. Each part that code acts on is a typed record; ``metrics`` and the training history
are measurements, kept as recorded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from covidnet.classes import TASK, Task, display_name
from covidnet.errors import CheckpointError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class LungCrop:
    """The lungs' bounding box, widened by ``margin`` of its width and height on every side, is cut out first (the
    whole image when no plausible lungs are found), by the segmenter whose weights have ``segmenter_sha256``."""

    margin: float
    segmenter_sha256: str
    to: str = "lungs"


@dataclass(frozen=True)
class GateRecord:
    """The chest X-ray gate: its file and sha256, the backbone whose stages it reads, and how it was fitted."""

    file: str
    sha256: str
    threshold: float
    quantile: float
    backbone: str
    stages: list[str]
    fitted_on: str
    threshold_from: str
    colour: dict[str, float]
    flat_std: float


@dataclass(frozen=True)
class Pretrained:
    """Where an ImageNet start came from (``covidnet.models.pretrained``): torchvision's cached ``weights`` file, or
    Google's TensorFlow Lite ``file`` converted to a state dict with ``converted_sha256``."""

    source: str  # "torchvision" or "tflite"
    file: str
    sha256: str
    weights: str | None = None
    converted_sha256: str | None = None


@dataclass(frozen=True)
class Thresholds:
    """Thresholds that change what a user is told."""

    uncertain_below: float | None = None  # top-class probability below which an answer is called uncertain
    uncertain_chosen_on: str = ""  # the films it was chosen on, in words (sources the model never trained on)
    uncertain_max_wrong: float | None = None  # the share of those films it lets be answered and wrong
    uncertain_confidence: float | None = None  # … shown with this confidence (an upper bound); None: as observed
    answered_share: float | None = None  # measured on the held-back half of those films: the share answered …
    answered_accuracy: float | None = None  # … and how many of those answers were right
    heatmap_in_lungs_below: float | None = None  # below this heatmap share inside the lungs, the analysis warns
    heatmap_in_lungs_quantile: float | None = None  # the share of validation films below it
    heatmap_in_lungs_chosen_on: str = ""  # the films and heatmap it was chosen on
    heatmap_in_lungs_median: float | None = None  # the median share on those films


@dataclass(frozen=True)
class FamiliarityRecord:
    """The unfamiliar-film signal: its file and sha256, its threshold and how it was fitted; and what measuring it
    on films of a source never trained on found (``shown``: whether it carries information, so the app shows it)."""

    file: str
    sha256: str
    threshold: float  # the distance of penultimate features above which a film is unfamiliar
    quantile: float  # the share of validation films at or below ``threshold``
    fitted_on: str
    threshold_from: str
    shown: bool = False  # set by ``covidnet familiarity-report``: the note is shown only when it carries information
    error_above: float | None = None  # the error rate above the threshold on the films it was measured on
    error_below: float | None = None  # … and at or below it
    measured_on: str = ""  # those films, in words
    wrong_auroc: float | None = None  # how well the distance ranked wrong answers above right ones there
    n_above: int | None = None  # how many of those films lay above the threshold
    rounds_measured_on: str = ""  # films of sources its recipe's leave-one-source-out rounds never trained on
    rounds_wrong_auroc: dict[str, float] = field(default_factory=dict)  # per left-out source, as ``wrong_auroc``
    rounds_answered_wrong: int | None = None  # wrong answers the rounds gave there at its "uncertain" threshold
    rounds_answered_wrong_flagged: int | None = None  # … of them above the signal's threshold


@dataclass(frozen=True)
class TrainingRecord:
    """How the checkpoint was trained: data, split, images per class, sources, settings, schedule and machine."""

    data: str
    split_file_sha256: str
    train_images: dict[str, int]
    val_images: dict[str, int]
    sources: list[str]
    settings: dict[str, Any]
    best_epoch: int
    history: list[dict[str, Any]]
    seconds: float
    machine: str
    torch: str
    held_out_sources: list[str] = field(default_factory=list)


_RECORDS = {
    "crop": LungCrop,
    "gate": GateRecord,
    "familiarity": FamiliarityRecord,
    "pretrained": Pretrained,
    "training": TrainingRecord,
}


@dataclass(frozen=True)
class CheckpointMetadata:
    """Everything needed to use, verify and judge one checkpoint."""

    backbone: str
    architecture: str  # the torchvision builder, e.g. "resnet18"
    input_size: int
    sha256: str
    size_bytes: int
    parameters: int
    task: Task = TASK
    channels: int = 3
    normalisation: dict[str, tuple[float, ...]] = field(
        default_factory=lambda: {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    )
    resize: str = "squash"  # the whole image (or the crop) is resized to input_size × input_size
    crop: LungCrop | None = None  # None: the whole image
    # "none", or "equalize": the (cropped) image's grey-level histogram is equalised before resizing, which takes
    # away much of a scanner's or a source's contrast and brightness look.
    intensity: str = "none"
    dtype: str = "float32"  # storage type of the state dict
    init: str = "scratch"  # "scratch", "imagenet" or "checkpoint:<file> sha256 <hex>" (a warm start from those weights)
    pretrained: Pretrained | None = None  # for init "imagenet"
    temperature: float = 1.0
    thresholds: Thresholds = field(default_factory=Thresholds)
    training: TrainingRecord | None = None
    metrics: dict[str, Any] = field(default_factory=dict)  # measured figures per split, as evaluation recorded them
    gate: GateRecord | None = None
    familiarity: FamiliarityRecord | None = None  # the unfamiliar-film signal (``covidnet fit-familiarity``)
    command: str = ""
    commit: str = ""

    @property
    def classes(self) -> tuple[str, ...]:
        """The classes in the order of the model's outputs."""
        return self.task.classes

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> CheckpointMetadata:
        """Metadata from its JSON record; unknown or missing fields raise ``CheckpointError``."""
        try:
            values = _checked(cls, record, "Checkpoint metadata")
            values["task"] = Task.from_dict(values.get("task", asdict(TASK)))
            if "normalisation" in values:
                values["normalisation"] = {k: tuple(v) for k, v in values["normalisation"].items()}
            values["thresholds"] = Thresholds(**_checked(Thresholds, values.get("thresholds", {}), "thresholds"))
            for name, kind in _RECORDS.items():
                if values.get(name) is not None:
                    values[name] = kind(**_checked(kind, values[name], f"its {name} record"))
            return cls(**values)
        except (TypeError, AttributeError) as e:
            raise CheckpointError(f"Checkpoint metadata is incomplete or malformed: {e}.") from None


def _checked(kind: type, record: Any, what: str) -> dict[str, Any]:
    """``record`` as a dict of ``kind``'s fields; unknown fields raise ``CheckpointError``."""
    if not isinstance(record, dict):
        raise CheckpointError(f"{what} is not a JSON object.")
    unknown = sorted(set(record) - {f.name for f in fields(kind)})
    if unknown:
        raise CheckpointError(f"{what} has unknown fields: {', '.join(unknown)}.")
    return dict(record)


def read_checkpoint_metadata(path: Path) -> CheckpointMetadata:
    """Read the metadata at ``path``."""
    try:
        return CheckpointMetadata.from_dict(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"Cannot read checkpoint metadata {str(path)!r}: {e}.") from None


def write_checkpoint_metadata(meta: CheckpointMetadata, path: Path) -> None:
    """Write ``meta`` to ``path`` as indented JSON."""
    path.write_text(meta.to_json())


def listed(names: list[str]) -> str:
    """Names in words: ``a``, ``a and b``, ``a, b and c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def training_images(metas: list[CheckpointMetadata]) -> str:
    """How many images the checkpoints learned from, read from their training records (never typed), e.g.
    "densenet121 and resnet18 learned from 5,348 training images (1,452 COVID-19, 1,976 Normal, 1,920 Pneumonia);
    mobilenet_v2 from 6,306 (…)"; empty when none has a training record."""
    groups: dict[tuple[tuple[str, int], ...], list[str]] = {}
    for meta in metas:
        if meta.training is not None:
            groups.setdefault(tuple(meta.training.train_images.items()), []).append(meta.backbone)
    parts = []
    for counts, names in groups.items():
        total = f"{sum(n for _, n in counts):,}" + (" training images" if not parts else "")
        per_class = ", ".join(f"{n:,} {display_name(label)}" for label, n in counts)
        parts.append(f"{listed(names)}{' learned' if not parts else ''} from {total} ({per_class})")
    return "; ".join(parts)
