import numpy as np
import pytest
import torch

from covidnet.assessment.metrics import (
    MIN_FILMS_PER_CLASS,
    covid_vs_pneumonia_auc,
    covid_vs_pneumonia_auc_by_group,
    expected_calibration_error,
    macro_auc,
    reliability_bins,
    sensitivity_at_specificity,
    source_summary,
    summarise,
)
from covidnet.training.calibration import fit_temperature


def one_hot(labels: np.ndarray, confidence: float = 1.0) -> np.ndarray:
    p = np.full((len(labels), 3), (1 - confidence) / 2)
    p[np.arange(len(labels)), labels] = confidence
    return p


def test_perfect_predictions_score_perfectly():
    labels = np.repeat([0, 1, 2], 20)
    m = summarise(one_hot(labels, 0.9), labels)
    assert m["accuracy"]["value"] == 1.0 and m["macro_auc"]["value"] == 1.0
    assert m["per_class"]["covid"]["sensitivity"]["value"] == 1.0
    assert m["covid_sensitivity_at_95_specificity"]["value"] == 1.0
    assert np.trace(m["confusion_matrix"]) == 60
    assert m["ece"] == pytest.approx(0.1)


def test_random_scores_give_chance_auc_with_an_interval_around_it():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 600)
    m = summarise(rng.dirichlet([1, 1, 1], 600), labels)
    auc = m["macro_auc"]
    assert 0.45 < auc["value"] < 0.55 and auc["low"] < auc["value"] < auc["high"]
    assert auc["high"] - auc["low"] < 0.12


def test_sensitivity_at_specificity_reads_the_roc_curve():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
    positive = np.array([0, 0, 0, 0, 0, 1, 0, 1, 1, 1], bool)
    assert sensitivity_at_specificity(scores, positive, 1.0) == 0.75  # above 0.7: three of four
    assert sensitivity_at_specificity(scores, positive, 0.8) == 1.0


def test_a_missing_class_gives_no_auc_rather_than_a_wrong_one():
    labels = np.array([0, 0, 1, 1])
    assert not np.isnan(macro_auc(one_hot(labels), labels))
    m = summarise(one_hot(labels), labels)
    assert m["per_class"]["pneumonia"]["auc"]["value"] is None


def test_covid_against_pneumonia_is_measured_on_those_two_classes_only():
    labels = np.repeat([0, 1, 2], 20)
    confused = np.array([[0.45, 0.1, 0.45]] * 20 + [[0.05, 0.9, 0.05]] * 20 + [[0.45, 0.1, 0.45]] * 20)
    m = summarise(confused, labels)  # COVID-19 stands out from the normals only
    assert m["per_class"]["covid"]["auc"]["value"] == pytest.approx(0.75)
    assert m["covid_vs_pneumonia_auc"]["value"] == pytest.approx(0.5)
    told_apart = np.array([[0.6, 0.1, 0.3]] * 20 + [[0.05, 0.9, 0.05]] * 20 + [[0.3, 0.1, 0.6]] * 20)
    assert covid_vs_pneumonia_auc(told_apart, labels) == 1.0
    assert np.isnan(covid_vs_pneumonia_auc(told_apart[:40], labels[:40]))  # no pneumonia


def test_within_a_group_covid_against_pneumonia_is_measured_only_where_it_holds_enough_of_both():
    n = MIN_FILMS_PER_CLASS
    labels = np.repeat([0, 2, 1, 0, 2, 0, 2], [n, n, 3, n, n - 1, n, n])
    groups = ["a"] * (2 * n + 3) + ["b"] * (2 * n - 1) + [None] * (2 * n)  # b: one pneumonia film too few
    scores = np.where(labels == 0, 0.6, 0.3) + np.where(np.arange(len(labels)) % 4 == 0, 0.2, 0.0)
    probabilities = np.stack([scores, np.full(len(labels), 0.1), 0.9 - scores], axis=1)

    measured = covid_vs_pneumonia_auc_by_group(probabilities, labels, groups)

    assert set(measured) == {"a"}
    a = measured["a"]
    assert (a["n_covid"], a["n_pneumonia"]) == (n, n)  # the normals are not counted
    a_films = np.arange(len(labels)) < 2 * n + 3
    assert a["auc"]["value"] == covid_vs_pneumonia_auc(probabilities[a_films], labels[a_films])
    assert a["auc"]["low"] <= a["auc"]["value"] <= a["auc"]["high"]


def test_temperature_scaling_recovers_the_temperature_that_made_the_labels():
    torch.manual_seed(0)
    logits = torch.randn(20000, 3) * 3
    labels = torch.multinomial(torch.softmax(logits / 2.0, 1), 1).squeeze(1)
    assert fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.05)


def test_ece_is_zero_when_confidence_matches_accuracy():
    labels = np.array([0] * 8 + [1] * 2)
    probabilities = np.tile([0.8, 0.1, 0.1], (10, 1))  # 80% confident, 80% right
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.0)
    bins = reliability_bins(probabilities, labels)
    assert sum(b["count"] for b in bins) == 10


def test_a_source_with_one_class_has_sensitivity_for_it_and_no_auc():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    only_covid = source_summary(probabilities, np.array([0, 0, 0]))
    assert only_covid["macro_auc"] is None and only_covid["accuracy"] == pytest.approx(2 / 3)
    assert only_covid["sensitivity"] == {"covid": pytest.approx(2 / 3), "normal": None, "pneumonia": None}
    mixed = source_summary(probabilities, np.array([0, 1, 1]))
    assert mixed["class_counts"] == {"covid": 1, "normal": 2, "pneumonia": 0}
    assert mixed["macro_auc"] == pytest.approx(macro_auc(probabilities, np.array([0, 1, 1])))
    assert mixed["sensitivity"]["normal"] == pytest.approx(0.5)
