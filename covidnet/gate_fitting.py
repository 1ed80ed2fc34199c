"""Fitting the chest X-ray gate of a trained backbone: features of the training split, threshold on
the validation split, saved beside the checkpoint and recorded in its card."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from covidnet.cards import ModelCard, read_card, write_card
from covidnet.checkpoints import checkpoint_paths
from covidnet.data import Record
from covidnet.evaluate import forward_all
from covidnet.gate import COLOUR_PIXELS, COLOUR_SATURATION, FLAT_STD, GATE_QUANTILE, fit_gate, save_gate
from covidnet.imaging import read_scan
from covidnet.predict import Predictor


def fit_from_splits(predictor: Predictor, train: list[Record], val: list[Record], weights_dir: Path) -> ModelCard:
    """Fit, save and record ``predictor``'s gate; return the updated card."""
    train_features = forward_all(predictor, [read_scan(r.path) for r in train])[1].numpy()
    val_features = forward_all(predictor, [read_scan(r.path) for r in val])[1].numpy()
    gate = fit_gate(train_features, val_features)
    path = Path(weights_dir) / f"{predictor.backbone}.gate.pt"
    _, card_path = checkpoint_paths(predictor.backbone, weights_dir)
    card = dataclasses.replace(
        read_card(card_path),
        gate={
            "file": path.name,
            "sha256": save_gate(gate, path),
            "threshold": gate.threshold,
            "quantile": GATE_QUANTILE,
            "fitted_on": f"penultimate features of {len(train)} training images (Ledoit-Wolf covariance)",
            "threshold_from": f"{GATE_QUANTILE:.0%} quantile of {len(val)} validation images' distances",
            "colour": {"saturation": COLOUR_SATURATION, "max_share": COLOUR_PIXELS},
            "flat_std": FLAT_STD,
        },
    )
    write_card(card, card_path)
    return card
