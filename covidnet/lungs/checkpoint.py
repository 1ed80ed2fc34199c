"""The lung segmenter's checkpoint: ``lungs.pt`` (a state dict only) beside ``lungs.json`` (its metadata).

Like the classifiers' checkpoints (``covidnet.models.checkpoints``), loading verifies the file's size and
sha256 against the metadata first and then reads tensors only (``weights_only=True``); a missing, changed or
inconsistent file is a ``CheckpointError``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from torch import nn

from covidnet.errors import CheckpointError
from covidnet.lungs.model import CONVENTIONS, LungUNet
from covidnet.models.artifacts import Artifact, save_tensors
from covidnet.models.checkpoints import count_parameters, default_weights_dir

NAME = "lungs"


@dataclass(frozen=True)
class LungsMetadata:
    """Everything needed to use, verify and judge the lung segmenter's checkpoint."""

    architecture: dict[str, Any]  # {"name": "LungUNet", "base": …, "depth": …}
    input_size: int
    sha256: str
    size_bytes: int
    parameters: int
    conventions: tuple[str, ...] = CONVENTIONS  # output channel order
    preprocessing: dict[str, Any] = field(default_factory=dict)
    postprocessing: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float32"
    init: str = "scratch"
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    commit: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> LungsMetadata:
        """Metadata from its JSON record; unknown or missing fields raise ``CheckpointError``."""
        unknown = sorted(set(record) - {f.name for f in fields(cls)})
        if unknown:
            raise CheckpointError(f"Lung segmenter metadata has unknown fields: {', '.join(unknown)}.")
        record = dict(record)
        if "conventions" in record:
            record["conventions"] = tuple(record["conventions"])
        try:
            return cls(**record)
        except TypeError as e:
            raise CheckpointError(f"Lung segmenter metadata is incomplete: {e}.") from None


def lungs_paths(weights_dir: Path | None = None) -> tuple[Path, Path]:
    """The ``(lungs.pt, lungs.json)`` paths in ``weights_dir`` (default: ``$COVIDNET_WEIGHTS`` or weights/)."""
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    return folder / f"{NAME}.pt", folder / f"{NAME}.json"


def build_segmenter(architecture: dict[str, Any]) -> LungUNet:
    """The network an ``architecture`` record describes."""
    if architecture.get("name") != "LungUNet":
        raise CheckpointError(f"Unknown lung segmenter architecture {architecture.get('name')!r}.")
    return LungUNet(base=int(architecture["base"]), depth=int(architecture["depth"]))


def save_lungs_checkpoint(model: LungUNet, out_dir: Path, **meta_fields: Any) -> LungsMetadata:
    """Write ``model``'s float32 state dict as ``lungs.pt`` and its metadata as ``lungs.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pt_path, meta_path = lungs_paths(out_dir)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = LungsMetadata(
        sha256=save_tensors(state, pt_path),
        size_bytes=pt_path.stat().st_size,
        parameters=count_parameters(model),
        **meta_fields,
    )
    meta_path.write_text(meta.to_json())
    return meta


def verify_lungs_checkpoint(weights_dir: Path | None = None) -> LungsMetadata:
    """The metadata of the lung segmenter, after checking its file's size and sha256."""
    meta, artifact = _recorded(weights_dir)
    artifact.verify()
    return meta


def load_lungs_checkpoint(weights_dir: Path | None = None) -> tuple[nn.Module, LungsMetadata]:
    """Verify, then load the lung segmenter as a float32 model in eval mode."""
    meta, artifact = _recorded(weights_dir)
    state = artifact.load_tensors()
    model = build_segmenter(meta.architecture)
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as e:
        raise CheckpointError(f"{NAME}.pt does not fit the {meta.architecture} architecture: {e}") from None
    if count_parameters(model) != meta.parameters or tuple(meta.conventions) != CONVENTIONS:
        raise CheckpointError(f"{NAME}.pt does not match {NAME}.json (parameters or mask conventions).")
    return model.eval(), meta


def _recorded(weights_dir: Path | None) -> tuple[LungsMetadata, Artifact]:
    """The segmenter's metadata and its file as the metadata names it (not yet verified)."""
    pt_path, meta_path = lungs_paths(weights_dir)
    if not meta_path.exists() or not pt_path.exists():
        raise CheckpointError(
            f"No trained lung segmenter in {str(pt_path.parent)!r} ({pt_path.name} and {meta_path.name}). "
            "Train it with `covidnet train-lungs`."
        )
    try:
        meta = LungsMetadata.from_dict(json.loads(meta_path.read_text()))
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"Cannot read lung segmenter metadata {str(meta_path)!r}: {e}.") from None
    return meta, Artifact(pt_path, meta.sha256, meta_path.name, meta.size_bytes)
