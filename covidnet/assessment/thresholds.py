"""The "uncertain" threshold, chosen where a user stands: on films from data sources the model never trained on.

A film is *answered* when its top calibrated probability reaches the threshold, and *uncertain* below it. The
threshold is the lowest on ``GRID`` at which the films answered **and wrong** are at most ``MAX_WRONG_ANSWERED`` of
all unseen-source films of the *choose* half, with ``BOUND_CONFIDENCE`` confidence: the one-sided Clopper–Pearson
upper bound of that share, not the share itself, has to meet it, so that the bound also holds on films the threshold
was not chosen on (a threshold chosen where the observed share just meets the bound misses it on about half of new
samples). It is then checked on the *check* half. Films fall into halves by a hash of their patient, so no patient
is in both. ``covidnet calibrate-uncertain`` records the result in each checkpoint's metadata (``Thresholds``) and
in ``weights/reports/uncertain.json``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta

from covidnet.assessment.films import Films
from covidnet.inference.results import MAJORITY

MAX_WRONG_ANSWERED = 0.05  # at most this share of unseen-source films may be answered and wrong
BOUND_CONFIDENCE = 0.95  # ... shown with this confidence (one-sided upper bound) on the films it is chosen on
GRID = tuple(float(t) for t in np.arange(MAJORITY, 0.9951, 0.01).round(2))  # never below a majority
CHOOSE, CHECK = "choose", "check"


@dataclass(frozen=True)
class Point:
    """Selective prediction at one threshold: the share of films answered, their accuracy, and the share of all
    films that were answered and wrong."""

    threshold: float
    n: int
    answered: float
    accuracy: float | None  # None when nothing is answered
    wrong_answered: float


@dataclass(frozen=True)
class Pool:
    """Films with one model's calibrated probabilities (films × classes), true labels, data sources and patients."""

    probabilities: np.ndarray
    labels: np.ndarray
    origins: list[str]
    patients: list[str]

    @classmethod
    def of(cls, parts: Sequence[tuple[Films, str]]) -> Pool:
        """The films of several reports pooled: each ``(films, model)`` pair gives that model's probabilities."""
        return cls(
            probabilities=np.concatenate([films.of_model(model) for films, model in parts]),
            labels=np.concatenate([films.label_indices() for films, _ in parts]),
            origins=[origin for films, _ in parts for origin in films.origins],
            patients=[patient for films, _ in parts for patient in films.patients],
        )

    def where(self, keep: np.ndarray) -> Pool:
        """The films where ``keep`` (a boolean array) holds."""
        return Pool(
            self.probabilities[keep],
            self.labels[keep],
            [o for o, k in zip(self.origins, keep, strict=True) if k],
            [p for p, k in zip(self.patients, keep, strict=True) if k],
        )

    def half(self, name: str) -> Pool:
        """The ``CHOOSE`` or ``CHECK`` half (by a hash of each film's patient)."""
        return self.where(np.array([half_of(p) == name for p in self.patients], dtype=bool))

    def at(self, threshold: float) -> Point:
        """Selective prediction on these films at ``threshold``."""
        confidence = self.probabilities.max(axis=1)
        correct = self.probabilities.argmax(axis=1) == self.labels
        answered = confidence >= threshold
        n = len(self.labels)
        return Point(
            threshold=threshold,
            n=n,
            answered=float(answered.mean()) if n else 0.0,
            accuracy=float(correct[answered].mean()) if answered.any() else None,
            wrong_answered=float((answered & ~correct).mean()) if n else 0.0,
        )

    def curve(self, grid: Sequence[float] = GRID) -> list[Point]:
        """The risk–coverage curve: ``at`` each threshold of ``grid``."""
        return [self.at(t) for t in grid]


def half_of(patient: str) -> str:
    """Which half a patient's films belong to: ``CHOOSE`` or ``CHECK``, fixed by a hash of the patient id."""
    return CHOOSE if hashlib.sha256(patient.encode()).digest()[0] % 2 == 0 else CHECK


def bound_in_words(max_wrong_answered: float, confidence: float | None) -> str:
    """A threshold's recorded bound as a user reads it, with its confidence where it was chosen with one."""
    words = f"wrong on at most {max_wrong_answered:.0%} of all films"
    return words if confidence is None else f"{words}, with {confidence:.0%} confidence"


def wrong_answered_bound(point: Point, confidence: float = BOUND_CONFIDENCE) -> float:
    """The one-sided Clopper–Pearson upper confidence bound of ``point``'s share of films answered and wrong."""
    wrong = round(point.wrong_answered * point.n)
    return 1.0 if wrong >= point.n else float(beta.ppf(confidence, wrong + 1, point.n - wrong))


def choose_threshold(
    curve: Sequence[Point], max_wrong_answered: float = MAX_WRONG_ANSWERED, confidence: float = BOUND_CONFIDENCE
) -> float:
    """The lowest threshold of ``curve`` at which the upper bound of the share answered and wrong is at most
    ``max_wrong_answered``; the highest threshold if none is."""
    meeting = [p.threshold for p in curve if wrong_answered_bound(p, confidence) <= max_wrong_answered]
    return min(meeting) if meeting else max(p.threshold for p in curve)
