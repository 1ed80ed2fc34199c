"""The "uncertain" report (``covidnet calibrate-uncertain``, ``weights/reports/uncertain.json``): each model's
threshold chosen on unseen-source films, checked on the other half, and its risk–coverage curves on unseen-source
and internal test films side by side."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from covidnet.assessment.films import Films
from covidnet.assessment.report_schema import SCHEMA_VERSION, checked
from covidnet.assessment.thresholds import CHECK, CHOOSE, MAX_WRONG_ANSWERED, Point, Pool, choose_threshold
from covidnet.models.checkpoints import checkpoint_paths
from covidnet.models.metadata import read_checkpoint_metadata, write_checkpoint_metadata

ENSEMBLE = "ensemble"  # the name of the ensemble's calibration among the models


@dataclass(frozen=True)
class ModelCalibration:
    """One model's "uncertain" threshold: where it was chosen, what it did on the check half, and its curves."""

    threshold: float
    unseen: str  # the unseen-source films, in words (which reports, which models)
    weights_sha256: str | None  # the weights it was chosen for (None: the ensemble)
    chosen: Point  # at the threshold, on the choose half
    checked: Point  # at the threshold, on the check half
    checked_by_source: dict[str, Point]
    unseen_curve: list[Point]  # every unseen-source film
    internal_curve: list[Point]  # the internal test films (sources it trained on)
    answers: dict[str, dict[str, int]] = field(default_factory=dict)  # answered unseen films: said → true → films

    @classmethod
    def from_dict(cls, record: Any, where: str) -> ModelCalibration:
        values = checked(cls, record, where)

        def point(p: Any) -> Point:
            return Point(**checked(Point, p, where))

        return cls(
            threshold=values["threshold"],
            unseen=values["unseen"],
            weights_sha256=values["weights_sha256"],
            chosen=point(values["chosen"]),
            checked=point(values["checked"]),
            checked_by_source={k: point(p) for k, p in values["checked_by_source"].items()},
            unseen_curve=[point(p) for p in values["unseen_curve"]],
            internal_curve=[point(p) for p in values["internal_curve"]],
            answers=values.get("answers", {}),
        )


@dataclass(frozen=True)
class Agreement:
    """How often every backbone gave the same answer on unseen-source films, and how often that answer was right."""

    films: str  # which films, in words
    n: int
    all_agree: float  # the share of films on which every backbone gave the same answer
    right_when_all_agree: float | None
    right_when_they_disagree: float | None  # the ensemble's answer

    @classmethod
    def of(cls, films: Films, described_as: str) -> Agreement:
        """Measured on ``films``, whose backbones' probabilities it compares."""
        answers = np.array([films.of_model(name).argmax(1) for name in films.probabilities])
        labels = films.label_indices()
        agree = (answers == answers[0]).all(axis=0)
        right = films.of_model("ensemble").argmax(1) == labels
        return cls(
            films=described_as,
            n=len(labels),
            all_agree=float(agree.mean()),
            right_when_all_agree=float(right[agree].mean()) if agree.any() else None,
            right_when_they_disagree=float(right[~agree].mean()) if (~agree).any() else None,
        )


@dataclass(frozen=True)
class UncertainReport:
    """Every model's calibration, the rule's bound, the backbones' agreement, and the command that wrote it."""

    max_wrong_answered: float
    models: dict[str, ModelCalibration]
    agreement: Agreement | None = None
    command: str = ""
    bound_confidence: float | None = None  # the bound's one-sided confidence; None: met by the observed share
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, record: Any) -> UncertainReport:
        values = checked(cls, record, "uncertain report")
        models = {name: ModelCalibration.from_dict(m, f"models.{name}") for name, m in values["models"].items()}
        agreement = values.get("agreement")
        agreement = None if agreement is None else Agreement(**checked(Agreement, agreement, "agreement"))
        return cls(**{**values, "models": models, "agreement": agreement})

    def ensemble_threshold(self, members: dict[str, str]) -> float | None:
        """The ensemble's threshold, if it was chosen for exactly these ``members`` (backbone → weights sha256)."""
        backbones = {name: m.weights_sha256 for name, m in self.models.items() if m.weights_sha256 is not None}
        ensemble = self.models.get(ENSEMBLE)
        return ensemble.threshold if ensemble is not None and backbones == members else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibrate(
    unseen: Sequence[tuple[Films, str]],
    internal: tuple[Films, str],
    *,
    described_as: str,
    weights_sha256: str | None,
    max_wrong_answered: float = MAX_WRONG_ANSWERED,
) -> ModelCalibration:
    """Choose a threshold on the choose half of the ``unseen`` films (``(films, model)`` pairs: that model's
    probabilities of those films), check it on the other half, and draw the curves (``internal``: the internal
    test films and the model)."""
    pool = Pool.of(unseen)
    choose, check = pool.half(CHOOSE), pool.half(CHECK)
    threshold = choose_threshold(choose.curve(), max_wrong_answered)
    origins = np.array(check.origins)
    return ModelCalibration(
        threshold=threshold,
        unseen=described_as,
        weights_sha256=weights_sha256,
        chosen=choose.at(threshold),
        checked=check.at(threshold),
        checked_by_source={o: check.where(origins == o).at(threshold) for o in sorted(set(check.origins))},
        unseen_curve=pool.curve(),
        internal_curve=Pool.of([internal]).curve(),
        answers=_answers(pool, threshold, internal[0].classes),
    )


def _answers(pool: Pool, threshold: float, classes: Sequence[str]) -> dict[str, dict[str, int]]:
    """For the films answered at ``threshold``: each class said → the true classes of those films, counted."""
    answered = pool.probabilities.max(axis=1) >= threshold
    said, true = pool.probabilities.argmax(axis=1), pool.labels
    return {
        classes[c]: {classes[t]: int(((said == c) & (true == t) & answered).sum()) for t in range(len(classes))}
        for c in range(len(classes))
    }


def record_thresholds(report: UncertainReport, weights_dir: Path) -> list[str]:
    """Write each backbone's calibrated threshold into its checkpoint's metadata (``Thresholds``), when the weights
    there are the ones it was chosen for. Returns the backbones recorded."""
    recorded = []
    for name, calibration in report.models.items():
        meta_path = checkpoint_paths(name, weights_dir)[1] if calibration.weights_sha256 else None
        if meta_path is None or not meta_path.exists():
            continue
        meta = read_checkpoint_metadata(meta_path)
        if meta.sha256 != calibration.weights_sha256:
            continue
        thresholds = replace(  # keeps the other thresholds (the lung-share cut)
            meta.thresholds,
            uncertain_below=calibration.threshold,
            uncertain_chosen_on=f"films from sources it never trained on: {calibration.unseen}",
            uncertain_max_wrong=report.max_wrong_answered,
            uncertain_confidence=report.bound_confidence,
            answered_share=calibration.checked.answered,
            answered_accuracy=calibration.checked.accuracy,
        )
        write_checkpoint_metadata(replace(meta, thresholds=thresholds), meta_path)
        recorded.append(name)
    return recorded
