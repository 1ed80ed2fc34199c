"""Checkpoints: save a state dict with its metadata, verify its sha256, load it safely.

A checkpoint is ``<backbone>.pt`` (a state dict only) beside ``<backbone>.json`` (its metadata).
Loading always verifies size and sha256 first and then reads tensors only (``weights_only=True``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from covidnet.errors import CheckpointError
from covidnet.models.artifacts import Artifact, save_tensors
from covidnet.models.metadata import CheckpointMetadata, read_checkpoint_metadata, write_checkpoint_metadata
from covidnet.models.registry import backbones, build_model, get_spec

WEIGHTS_ENV = "COVIDNET_WEIGHTS"
_STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def default_weights_dir() -> Path:
    """``$COVIDNET_WEIGHTS`` if set, else the ``weights/`` folder shipped beside the package."""
    return Path(os.environ.get(WEIGHTS_ENV) or Path(__file__).resolve().parents[2] / "weights")


def checkpoint_paths(backbone: str, weights_dir: Path | None = None) -> tuple[Path, Path]:
    """The ``(.pt, .json)`` paths of ``backbone``'s checkpoint."""
    folder = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    return folder / f"{backbone}.pt", folder / f"{backbone}.json"


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_checkpoint(
    model: nn.Module,
    *,
    backbone: str,
    input_size: int,
    out_dir: Path,
    dtype: str = "float32",
    **meta_fields: Any,
) -> CheckpointMetadata:
    """Write ``model``'s state dict and its metadata into ``out_dir``; return the metadata."""
    get_spec(backbone)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pt_path, meta_path = checkpoint_paths(backbone, out_dir)
    storage = _STORAGE_DTYPES[dtype]
    state = {
        k: (v.detach().to(storage) if v.is_floating_point() else v.detach()).contiguous().cpu()
        for k, v in model.state_dict().items()
    }
    sha256 = save_tensors(state, pt_path)
    meta = CheckpointMetadata(
        backbone=backbone,
        architecture=get_spec(backbone).builder,
        input_size=input_size,
        sha256=sha256,
        size_bytes=pt_path.stat().st_size,
        parameters=count_parameters(model),
        dtype=dtype,
        **meta_fields,
    )
    write_checkpoint_metadata(meta, meta_path)
    return meta


def verify_checkpoint(backbone: str, weights_dir: Path | None = None) -> CheckpointMetadata:
    """The metadata of ``backbone``'s checkpoint, after checking the file's size and sha256."""
    meta, artifact = _recorded(backbone, weights_dir)
    artifact.verify()
    return meta


def load_checkpoint(backbone: str, weights_dir: Path | None = None) -> tuple[nn.Module, CheckpointMetadata]:
    """Verify, then load ``backbone``'s checkpoint as a float32 model in eval mode."""
    meta, artifact = _recorded(backbone, weights_dir)
    state = artifact.load_tensors()
    model = build_model(backbone, init="empty", num_classes=len(meta.classes))
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state, assign=True)
    except RuntimeError as e:
        raise CheckpointError(f"{artifact.path.name} does not fit the {backbone} architecture: {e}") from None
    if count_parameters(model) != meta.parameters:
        raise CheckpointError(f"{backbone} has {count_parameters(model)} parameters, metadata says {meta.parameters}.")
    return model.eval(), meta


def _recorded(backbone: str, weights_dir: Path | None) -> tuple[CheckpointMetadata, Artifact]:
    """``backbone``'s metadata and its checkpoint file as the metadata names it (not yet verified)."""
    get_spec(backbone)
    pt_path, meta_path = checkpoint_paths(backbone, weights_dir)
    if not meta_path.exists() or not pt_path.exists():
        raise CheckpointError(
            f"No trained weights for {backbone} in {str(pt_path.parent)!r}. "
            f"Train them with `covidnet train --backbone {backbone}`."
        )
    meta = read_checkpoint_metadata(meta_path)
    if meta.backbone != backbone:
        raise CheckpointError(f"{meta_path.name} describes {meta.backbone!r}, not {backbone!r}.")
    return meta, Artifact(pt_path, meta.sha256, meta_path.name, meta.size_bytes)


def trained_backbones(weights_dir: Path | None = None) -> list[str]:
    """The backbones whose checkpoint is present and passes verification."""
    usable = []
    for name in backbones():
        try:
            verify_checkpoint(name, weights_dir)
        except CheckpointError:
            continue
        usable.append(name)
    return usable
