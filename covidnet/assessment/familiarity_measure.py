"""Measuring a backbone's unfamiliar-film signal: on films of a source it never trained on against internal test
films, how well the distance tells the two apart, how well it predicts a wrong answer, and the error rate above and
below the threshold; the rule that decides whether the app shows the note, and its record in the metadata."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from covidnet.assessment.familiarity_report import FamiliarityResult
from covidnet.assessment.film_features import film_features
from covidnet.assessment.metrics import auc_interval
from covidnet.data.records import Record
from covidnet.errors import CovidNetError
from covidnet.inference.predictor import Predictor
from covidnet.models.checkpoints import checkpoint_paths
from covidnet.models.metadata import read_checkpoint_metadata, write_checkpoint_metadata

MIN_WRONG_AUROC = 0.6  # the signal must rank wrong answers above right ones at least this well on unseen films
MIN_ABOVE = 10  # … with at least this many unseen films above the threshold
RULE = (
    f"the note is shown only when, on the films of the source never trained on, the distance ranks wrong answers "
    f"above right ones with an AUROC of at least {MIN_WRONG_AUROC}, at least {MIN_ABOVE} of them lie above the "
    "threshold, and answers above it are wrong more often than answers at or below it"
)
UNSEEN_WORDS = "films of a source CovidNet never trained on (ieee8023)"


def measure_backbone(
    predictor: Predictor, internal: list[Record], unseen: list[Record], cache: Path
) -> FamiliarityResult:
    """``predictor``'s signal on ``internal`` (internal test) and ``unseen`` (a source never trained on) films."""
    if predictor.familiarity is None:
        raise CovidNetError(f"{predictor.backbone} has no unfamiliar-film signal; run `covidnet fit-familiarity`.")
    record = predictor.meta.familiarity
    inside, outside = film_features(predictor, internal, cache), film_features(predictor, unseen, cache)
    near = predictor.familiarity.distance(torch.from_numpy(inside.features)).numpy()
    far = predictor.familiarity.distance(torch.from_numpy(outside.features)).numpy()
    above, above_internal, n = far > record.threshold, near > record.threshold, len(near)
    wrong_auroc = auc_interval(far, outside.wrong)
    top = np.array([max(p.values()) for p in predictor.classifier.probabilities(torch.from_numpy(outside.logits))])
    error_above, error_below = _error(outside.wrong, above), _error(outside.wrong, ~above)
    shown = bool(
        wrong_auroc["value"] is not None
        and wrong_auroc["value"] >= MIN_WRONG_AUROC
        and above.sum() >= MIN_ABOVE
        and error_above is not None
        and error_below is not None
        and error_above > error_below
    )
    return FamiliarityResult(
        weights_sha256=predictor.meta.sha256,
        familiarity_sha256=record.sha256,
        threshold=record.threshold,
        quantile=record.quantile,
        n_internal=len(near),
        n_unseen=len(far),
        unseen_vs_internal_auroc=auc_interval(np.concatenate([near, far]), np.arange(len(near) + len(far)) >= n),
        wrong_auroc_unseen=wrong_auroc,
        wrong_auroc_internal=auc_interval(near, inside.wrong),
        wrong_auroc_unseen_top_probability=auc_interval(-top, outside.wrong),
        error_unseen=float(outside.wrong.mean()),
        n_above_unseen=int(above.sum()),
        error_above_unseen=error_above,
        error_below_unseen=error_below,
        share_above_internal=float(above_internal.mean()),
        error_above_internal=_error(inside.wrong, above_internal),
        error_below_internal=_error(inside.wrong, ~above_internal),
        shown=shown,
    )


def _error(wrong: np.ndarray, where: np.ndarray) -> float | None:
    return float(wrong[where].mean()) if where.any() else None


def record_verdict(result: FamiliarityResult, backbone: str, weights_dir: Path) -> bool:
    """Record whether the note is shown, and the error rates behind it, in ``backbone``'s metadata; False (nothing
    written) when the metadata names other weights or another signal than the ones measured."""
    meta_path = checkpoint_paths(backbone, weights_dir)[1]
    meta = read_checkpoint_metadata(meta_path)
    record = meta.familiarity
    if meta.sha256 != result.weights_sha256 or record is None or record.sha256 != result.familiarity_sha256:
        return False
    measured = dataclasses.replace(
        record,
        shown=result.shown,
        error_above=result.error_above_unseen,
        error_below=result.error_below_unseen,
        measured_on=f"{result.n_unseen} {UNSEEN_WORDS}",
        wrong_auroc=result.wrong_auroc_unseen["value"],
        n_above=result.n_above_unseen,
    )
    write_checkpoint_metadata(dataclasses.replace(meta, familiarity=measured), meta_path)
    return True
