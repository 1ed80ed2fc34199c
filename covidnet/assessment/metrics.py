"""Classification and calibration metrics with ``CONFIDENCE`` bootstrap intervals (pure functions over
probabilities and labels)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score, roc_curve

from covidnet.classes import CLASSES, TASK

BOOTSTRAP_ROUNDS = 1000
CONFIDENCE = 0.95  # of the bootstrap intervals
COVID_SPECIFICITY = 0.95  # COVID-19 sensitivity is also reported at this specificity
MIN_FILMS_PER_CLASS = 10  # a group is measured on its own only with at least this many COVID-19 and pneumonia films
ROC_POINTS = 101


def summarise(probabilities: np.ndarray, labels: np.ndarray, *, seed: int = 0) -> dict:
    """Every headline metric of one model (or the ensemble) on one data set.

    ``probabilities`` has one row per image and one column per class in ``CLASSES`` order.
    """
    predictions = probabilities.argmax(axis=1)
    resamples = _resamples(len(labels), seed)

    def with_interval(metric: Callable[[np.ndarray, np.ndarray], float]) -> dict:
        return _interval(metric, probabilities, labels, resamples)

    per_class = {}
    for k, name in enumerate(CLASSES):
        per_class[name] = {
            "auc": with_interval(lambda p, y, k=k: _auc(p[:, k], y == k)),
            "sensitivity": with_interval(lambda p, y, k=k: _ratio((p.argmax(1) == k) & (y == k), y == k)),
            "specificity": with_interval(lambda p, y, k=k: _ratio((p.argmax(1) != k) & (y != k), y != k)),
            "ppv": with_interval(lambda p, y, k=k: _ratio((p.argmax(1) == k) & (y == k), p.argmax(1) == k)),
        }
    covid = CLASSES.index(TASK.of_interest)
    return {
        "n": len(labels),
        "class_counts": {name: int((labels == k).sum()) for k, name in enumerate(CLASSES)},
        "accuracy": with_interval(lambda p, y: float((p.argmax(1) == y).mean())),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predictions)),
        "macro_auc": with_interval(macro_auc),
        "per_class": per_class,
        "covid_sensitivity_at_95_specificity": with_interval(
            lambda p, y: sensitivity_at_specificity(p[:, covid], y == covid, COVID_SPECIFICITY)
        ),
        "covid_vs_pneumonia_auc": with_interval(covid_vs_pneumonia_auc),
        "confusion_matrix": confusion_matrix(labels, predictions, labels=range(len(CLASSES))).tolist(),
        "roc": {name: _roc_points(probabilities[:, k], labels == k) for k, name in enumerate(CLASSES)},
        "ece": expected_calibration_error(probabilities, labels),
        "reliability": reliability_bins(probabilities, labels),
        "selective": selective_accuracy(probabilities, labels),
    }


def selective_accuracy(probabilities: np.ndarray, labels: np.ndarray) -> list[dict[str, float]]:
    """For top-probability thresholds 0.35…0.95: the share of images at or above each, and their accuracy."""
    confidence, correct = probabilities.max(axis=1), probabilities.argmax(axis=1) == labels
    rows = []
    for threshold in np.arange(0.35, 0.951, 0.05).round(2):
        kept = confidence >= threshold
        accuracy = float(correct[kept].mean()) if kept.any() else None
        rows.append({"threshold": float(threshold), "coverage": float(kept.mean()), "accuracy": accuracy})
    return rows


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, *, bins: int = 10) -> list[dict[str, float]]:
    """Confidence bins of the top class: count, mean confidence and accuracy in each."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows = []
    for low, high in itertools.pairwise(edges):
        inside = (confidence > low) & (confidence <= high)
        rows.append(
            {
                "low": float(low),
                "high": float(high),
                "count": int(inside.sum()),
                "confidence": float(confidence[inside].mean()) if inside.any() else None,
                "accuracy": float(correct[inside].mean()) if inside.any() else None,
            }
        )
    return rows


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, *, bins: int = 10) -> float:
    """ECE: the count-weighted gap between confidence and accuracy over the reliability bins."""
    total = len(labels)
    return float(
        sum(
            row["count"] / total * abs(row["confidence"] - row["accuracy"])
            for row in reliability_bins(probabilities, labels, bins=bins)
            if row["count"]
        )
    )


def macro_auc(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """One-vs-rest AUC averaged over the classes present (NaN when fewer than two are)."""
    aucs = [_auc(probabilities[:, k], labels == k) for k in range(len(CLASSES))]
    aucs = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def covid_vs_pneumonia_auc(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """AUC of the COVID-19 probability on the COVID-19 and pneumonia scans only: does the model tell COVID-19 from
    other pneumonia (NaN without both)."""
    covid, pneumonia = (CLASSES.index(c) for c in TASK.confusable)
    either = (labels == covid) | (labels == pneumonia)
    return _auc(probabilities[either, covid], labels[either] == covid)


def covid_vs_pneumonia_auc_by_group(
    probabilities: np.ndarray, labels: np.ndarray, groups: list[str | None], *, seed: int = 0
) -> dict[str, dict]:
    """``covid_vs_pneumonia_auc`` within each group (e.g. the archive a film comes from) that holds at least
    ``MIN_FILMS_PER_CLASS`` COVID-19 and as many pneumonia scans, with a bootstrap interval over that group's
    COVID-19 and pneumonia scans: group → ``{"n_covid", "n_pneumonia", "auc"}``. Scans of group None are left out."""
    covid, pneumonia = (CLASSES.index(c) for c in TASK.confusable)
    either = (labels == covid) | (labels == pneumonia)
    measured = {}
    for group in sorted({g for g in groups if g is not None}):
        members = either & np.array([g == group for g in groups])
        p, y = probabilities[members], labels[members]
        n_covid, n_pneumonia = int((y == covid).sum()), int((y == pneumonia).sum())
        if min(n_covid, n_pneumonia) >= MIN_FILMS_PER_CLASS:
            auc = _interval(covid_vs_pneumonia_auc, p, y, _resamples(len(y), seed))
            measured[group] = {"n_covid": n_covid, "n_pneumonia": n_pneumonia, "auc": auc}
    return measured


def source_summary(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, macro AUC (over the classes present; None with one) and per-class sensitivity on one source's
    scans, without intervals."""
    predictions = probabilities.argmax(1)
    present = np.unique(labels)
    auc = macro_auc(probabilities, labels) if len(present) > 1 else None
    return {
        "n": len(labels),
        "class_counts": {name: int((labels == k).sum()) for k, name in enumerate(CLASSES)},
        "accuracy": float((predictions == labels).mean()),
        "macro_auc": auc,
        "sensitivity": {
            name: float((predictions[labels == k] == k).mean()) if (labels == k).any() else None
            for k, name in enumerate(CLASSES)
        },
    }


def sensitivity_at_specificity(scores: np.ndarray, positive: np.ndarray, specificity: float) -> float:
    """The highest sensitivity reachable with specificity at least ``specificity``."""
    if positive.all() or not positive.any():
        return float("nan")
    fpr, tpr, _ = roc_curve(positive, scores)
    return float(tpr[fpr <= 1.0 - specificity].max())


def auc_interval(scores: np.ndarray, positive: np.ndarray, *, seed: int = 0) -> dict:
    """The AUC of ``scores`` for telling ``positive`` from the rest, with its bootstrap interval."""
    return _interval(_auc, scores, positive, _resamples(len(scores), seed))


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    if positive.all() or not positive.any():
        return float("nan")
    return float(roc_auc_score(positive, scores))


def _ratio(hits: np.ndarray, of: np.ndarray) -> float:
    return float(hits.sum() / of.sum()) if of.any() else float("nan")


def _resamples(n: int, seed: int) -> list[np.ndarray]:
    """``BOOTSTRAP_ROUNDS`` bootstrap resamples (indices drawn with replacement) of ``n`` items."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n, n) for _ in range(BOOTSTRAP_ROUNDS)]


def _interval(metric: Callable, probabilities: np.ndarray, labels: np.ndarray, resamples: list[np.ndarray]) -> dict:
    values = np.array([metric(probabilities[i], labels[i]) for i in resamples], dtype=float)
    values = values[~np.isnan(values)]
    value = metric(probabilities, labels)
    if len(values) == 0:
        return {"value": _json_float(value), "low": None, "high": None}
    tail = round(50 * (1 - CONFIDENCE), 6)  # percent of the resamples outside the interval on each side
    low, high = np.percentile(values, [tail, 100 - tail])
    return {"value": _json_float(value), "low": float(low), "high": float(high)}


def _roc_points(scores: np.ndarray, positive: np.ndarray) -> dict[str, list[float]]:
    if positive.all() or not positive.any():
        return {"fpr": [], "tpr": []}
    fpr, tpr, _ = roc_curve(positive, scores)
    grid = np.linspace(0.0, 1.0, ROC_POINTS)
    return {"fpr": grid.round(4).tolist(), "tpr": np.interp(grid, fpr, tpr).round(4).tolist()}


def _json_float(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
