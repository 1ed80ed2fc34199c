"""Fitting a trained backbone's unfamiliar-film signal and its lung-share cut: the signal on training films'
penultimate features, its threshold and the cut on validation films; the signal's file saved beside the checkpoint
and both recorded in its metadata."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from covidnet.assessment.film_features import HEATMAP_METHOD, film_features, subsample
from covidnet.data.records import Record
from covidnet.errors import TrainingSetupError
from covidnet.inference.familiarity import FAMILIARITY_QUANTILE, NEIGHBOURS, fit_familiarity, save_familiarity
from covidnet.inference.predictor import Predictor
from covidnet.models.artifacts import sha256_of
from covidnet.models.checkpoints import checkpoint_paths
from covidnet.models.metadata import (
    CheckpointMetadata,
    FamiliarityRecord,
    read_checkpoint_metadata,
    write_checkpoint_metadata,
)

LUNG_SHARE_QUANTILE = 0.10  # the lung-share warning fires on this share of validation films (the worst tail)
TRAIN_LIMIT = 1500  # training films the signal is fitted on, at most (drawn at random)


def check_split_file(meta: CheckpointMetadata, split_file: Path) -> None:
    """Refuse a split file other than the one ``meta``'s model was trained with: the signal's reference is the films
    the model trained on, and films it never saw, counted among them, would read as familiar."""
    recorded = meta.training.split_file_sha256 if meta.training else ""
    given = sha256_of(Path(split_file))
    if recorded and recorded != given:
        raise TrainingSetupError(
            f"{meta.backbone} was trained with a split file of sha256 {recorded[:12]}…, not {split_file} "
            f"({given[:12]}…): pass the split file it was trained with (--split-file), so that the unfamiliar-film "
            "signal is fitted on its own training films."
        )


def familiarity_path(backbone: str, weights_dir: Path) -> Path:
    """Where ``backbone``'s familiarity file goes."""
    return Path(weights_dir) / f"{backbone}.familiarity.pt"


def fit_from_splits(
    predictor: Predictor,
    train: list[Record],
    val: list[Record],
    weights_dir: Path,
    cache: Path,
    *,
    limit: int | None = TRAIN_LIMIT,
) -> CheckpointMetadata:
    """Fit, save and record ``predictor``'s unfamiliar-film signal and lung-share cut; return the new metadata.

    A refit clears the previous measurement (``shown`` false) until ``covidnet familiarity-report`` runs again."""
    fitted_on = subsample(train, limit)
    train_films = film_features(predictor, fitted_on, cache)
    val_films = film_features(predictor, val, cache, heatmaps=True)
    model = fit_familiarity(train_films.features.astype(np.float64), val_films.features.astype(np.float64))
    path = familiarity_path(predictor.backbone, weights_dir)
    shares = val_films.in_lungs[~np.isnan(val_films.in_lungs)]
    _, meta_path = checkpoint_paths(predictor.backbone, weights_dir)
    meta = read_checkpoint_metadata(meta_path)
    thresholds = dataclasses.replace(
        meta.thresholds,
        heatmap_in_lungs_below=float(np.quantile(shares, LUNG_SHARE_QUANTILE)),
        heatmap_in_lungs_quantile=LUNG_SHARE_QUANTILE,
        heatmap_in_lungs_median=float(np.median(shares)),
        heatmap_in_lungs_chosen_on=(
            f"{len(shares)} validation films with plausible lungs, {HEATMAP_METHOD} heatmap of the predicted class"
        ),
    )
    record = FamiliarityRecord(
        file=path.name,
        sha256=save_familiarity(model, path),
        threshold=model.threshold,
        quantile=FAMILIARITY_QUANTILE,
        fitted_on=f"penultimate features of {len(fitted_on)} of {len(train)} training films ({NEIGHBOURS} nearest)",
        threshold_from=f"{FAMILIARITY_QUANTILE:.0%} quantile of the distances of {len(val)} validation films",
    )
    meta = dataclasses.replace(meta, thresholds=thresholds, familiarity=record)
    write_checkpoint_metadata(meta, meta_path)
    return meta
