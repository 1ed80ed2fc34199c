"""The "uncertain" threshold: the top probability below which the app calls a backbone's prediction uncertain.

It is chosen by ``covidnet evaluate`` on the validation split and recorded in the checkpoint's metadata as
``thresholds.uncertain_below`` (``covidnet.assessment.evaluate.record_in_metadata``); the predictor hands it to
every ``Analysis``.
"""

from __future__ import annotations

import numpy as np

from covidnet.assessment.metrics import selective_accuracy
from covidnet.inference.results import MAJORITY

TARGET_ACCURACY = 0.95  # predictions at or above the threshold were at least this accurate on validation


def uncertainty_threshold(
    selective: list[dict], *, target_accuracy: float = TARGET_ACCURACY, floor: float = MAJORITY
) -> float:
    """The lowest of ``selective``'s top-probability thresholds at and above which accuracy reaches
    ``target_accuracy``, never below ``floor`` (a top class under one half is a plurality, not a majority);
    the highest threshold if none reaches it. ``selective`` is ``metrics.selective_accuracy``'s rows."""
    meeting = [r["threshold"] for r in selective if r["accuracy"] is not None and r["accuracy"] >= target_accuracy]
    return max(floor, min(meeting)) if meeting else max(r["threshold"] for r in selective)


def uncertain_below(probabilities: np.ndarray, labels: np.ndarray, **options) -> float:
    """``uncertainty_threshold`` of calibrated ``probabilities`` (one row per image) against true ``labels``."""
    return uncertainty_threshold(selective_accuracy(probabilities, labels), **options)
