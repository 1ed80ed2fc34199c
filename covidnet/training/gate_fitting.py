"""Fitting the chest X-ray gate of a trained backbone: features of the training split, threshold on
the validation split, saved beside the checkpoint and recorded in its metadata."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from covidnet.assessment.forward import forward_all
from covidnet.data.records import Record
from covidnet.inference.feature_gate import GATE_QUANTILE, fit_gate, save_gate
from covidnet.inference.gate import COLOUR_PIXELS, COLOUR_SATURATION, FLAT_STD
from covidnet.inference.predictor import Predictor
from covidnet.io.reading import read_scan
from covidnet.models.checkpoints import checkpoint_paths
from covidnet.models.metadata import CheckpointMetadata, GateRecord, read_checkpoint_metadata, write_checkpoint_metadata
from covidnet.models.registry import get_spec


def fit_from_splits(
    predictor: Predictor, train: list[Record], val: list[Record], weights_dir: Path
) -> CheckpointMetadata:
    """Fit, save and record ``predictor``'s gate; return the updated metadata."""
    train_stages = forward_all(predictor, [read_scan(r.path) for r in train]).stages
    val_stages = forward_all(predictor, [read_scan(r.path) for r in val]).stages
    gate = fit_gate([s.numpy() for s in train_stages], [s.numpy() for s in val_stages])
    path = Path(weights_dir) / f"{predictor.backbone}.gate.pt"
    _, meta_path = checkpoint_paths(predictor.backbone, weights_dir)
    meta = dataclasses.replace(
        read_checkpoint_metadata(meta_path),
        gate=GateRecord(
            file=path.name,
            sha256=save_gate(gate, path),
            threshold=gate.threshold,
            quantile=GATE_QUANTILE,
            backbone=predictor.backbone,
            stages=list(get_spec(predictor.backbone).gate_layers),
            fitted_on=f"per-channel mean and std of each stage, {len(train)} training images (Ledoit-Wolf)",
            threshold_from=f"{GATE_QUANTILE:.0%} quantiles on {len(val)} validation images",
            colour={"saturation": COLOUR_SATURATION, "max_share": COLOUR_PIXELS},
            flat_std=FLAT_STD,
        ),
    )
    write_checkpoint_metadata(meta, meta_path)
    return meta


def share_gate(keeper: CheckpointMetadata, backbone: str, weights_dir: Path) -> CheckpointMetadata:
    """Give ``backbone`` the gate recorded in ``keeper`` (another backbone's metadata); return its new metadata."""
    _, meta_path = checkpoint_paths(backbone, weights_dir)
    meta = dataclasses.replace(read_checkpoint_metadata(meta_path), gate=keeper.gate)
    write_checkpoint_metadata(meta, meta_path)
    return meta
