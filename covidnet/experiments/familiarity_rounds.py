"""The unfamiliar-film signal on a hospital a model's recipe never trained on: each leave-one-source-out round's model
gets the signal a shipped model gets, fitted on the round's own training and validation films (``fit_from_splits``),
and is measured as ``measure_backbone`` measures it, on every pool film of the source the round was trained without
against the round's internal test films. Its answers at the shipped model's "uncertain" threshold (the ones a user
would be given) are counted apart: were the wrong ones flagged unfamiliar?"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from covidnet.assessment.familiarity_measure import measure_backbone
from covidnet.assessment.familiarity_report import RoundFamiliarity
from covidnet.assessment.film_features import film_features
from covidnet.data.records import Record
from covidnet.data.sources import matches, training_films, without
from covidnet.errors import CovidNetError
from covidnet.inference.predictor import ungated_predictor
from covidnet.models.checkpoints import checkpoint_paths
from covidnet.models.metadata import read_checkpoint_metadata, write_checkpoint_metadata
from covidnet.training.familiarity_fitting import check_split_file, fit_from_splits

POOL = ("train", "val", "test")  # the split parts a left-out source's films are taken from ("excluded" is not)


def round_folders(recipe: Path, backbone: str) -> list[Path]:
    """The rounds of a ``covidnet leave-one-out --folder`` folder: its subfolders holding a ``backbone`` checkpoint."""
    folders = sorted(p for p in Path(recipe).iterdir() if checkpoint_paths(backbone, p)[0].exists())
    if not folders:
        raise CovidNetError(f"{recipe} holds no leave-one-source-out rounds with a {backbone} checkpoint.")
    return folders


def measure_round(
    folder: Path,
    backbone: str,
    parts: dict[str, list[Record]],
    split_file: Path,
    cache: Path,
    answered_at: float | None,
) -> RoundFamiliarity:
    """Fit the round's signal on its own films (written into ``folder``), then measure it on its left-out source."""
    meta = read_checkpoint_metadata(checkpoint_paths(backbone, folder)[1])
    check_split_file(meta, split_file)
    settings = meta.training.settings if meta.training else {}
    left_out = list(settings.get("exclude") or [])
    if not left_out:
        raise CovidNetError(f"{folder}: {backbone} was not trained without a source (no --exclude recorded).")
    holdout, limit = settings.get("holdout") or [], settings.get("limit")
    train, val = training_films(parts, exclude=left_out, holdout=holdout, limit=limit)
    fit_from_splits(ungated_predictor(backbone, folder, familiarity=False), train, val, folder, cache)
    predictor = ungated_predictor(backbone, folder, familiarity=True)
    unseen = [r for part in POOL for r in parts.get(part, []) if matches(r, left_out)]
    result = measure_backbone(predictor, without(parts["test"], left_out), unseen, cache)
    films = film_features(predictor, unseen, cache)
    flagged = predictor.familiarity.distance(torch.from_numpy(films.features)).numpy() > result.threshold
    probabilities = predictor.classifier.probabilities(torch.from_numpy(films.logits))
    answered = np.array([max(p.values()) >= (answered_at or 0.0) for p in probabilities])
    wrong, right = answered & films.wrong, answered & ~films.wrong
    return RoundFamiliarity(
        left_out=", ".join(left_out),
        folder=str(folder),
        result=result,
        answered_at=answered_at,
        answered_wrong=int(wrong.sum()),
        answered_wrong_flagged=int((wrong & flagged).sum()),
        answered_right=int(right.sum()),
        answered_right_flagged=int((right & flagged).sum()),
    )


def record_rounds(rounds: list[RoundFamiliarity], backbone: str, weights_dir: Path) -> bool:
    """Record what its recipe's rounds found in ``backbone``'s signal record; False (nothing written) without one."""
    meta_path = checkpoint_paths(backbone, weights_dir)[1]
    meta = read_checkpoint_metadata(meta_path)
    if meta.familiarity is None or not rounds:
        return False
    films = " and ".join(f"{r.result.n_unseen} {r.left_out}" for r in rounds)
    measured = dataclasses.replace(
        meta.familiarity,
        rounds_measured_on=f"{films} films (leave-one-source-out rounds of its recipe, each without that source)",
        rounds_wrong_auroc={
            r.left_out: r.result.wrong_auroc_unseen["value"]
            for r in rounds
            if r.result.wrong_auroc_unseen["value"] is not None
        },
        rounds_answered_wrong=sum(r.answered_wrong for r in rounds),
        rounds_answered_wrong_flagged=sum(r.answered_wrong_flagged for r in rounds),
    )
    write_checkpoint_metadata(dataclasses.replace(meta, familiarity=measured), meta_path)
    return True
