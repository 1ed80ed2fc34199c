"""The COVID-19 vs pneumonia AUC within one ieee8023 archive, on the real archive file of ../shared: the join on the
image path, the per-archive figures against scikit-learn on the same films, and ``covidnet evaluate`` writing them
from a model's own predictions."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest
from conftest import CXR_ROOT
from sklearn.metrics import roc_auc_score

import covidnet
from covidnet.assessment import metrics as metrics_module
from covidnet.assessment.archives import ARCHIVES_FILE, NOT_ONE_ARCHIVE, archive_of, archives_beside
from covidnet.assessment.metrics import MIN_FILMS_PER_CLASS, covid_vs_pneumonia_auc_by_group
from covidnet.assessment.report_files import read_report
from covidnet.classes import CLASSES
from covidnet.cli import main
from covidnet.data.records import read_metadata

COVID, PNEUMONIA = CLASSES.index("covid"), CLASSES.index("pneumonia")
FILMS_PER_CLASS = MIN_FILMS_PER_CLASS  # per archive and class in the end-to-end test: just enough to be measured


@pytest.fixture(scope="module")
def archive_rows() -> list[dict[str, str]]:
    """The rows of the real archive file (skipped where ../shared is absent)."""
    path = CXR_ROOT / ARCHIVES_FILE
    if not path.exists():
        pytest.skip(f"the ieee8023 archive file is not at {path}")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def within(probabilities: np.ndarray, labels: np.ndarray, members: np.ndarray) -> float:
    """scikit-learn's COVID-19 vs pneumonia AUC on the ``members`` among the COVID-19 and pneumonia films."""
    either = members & ((labels == COVID) | (labels == PNEUMONIA))
    return roc_auc_score(labels[either] == COVID, probabilities[either, COVID])


def test_every_ieee8023_film_of_one_archive_is_joined_on_its_path_with_the_label_of_the_metadata(archive_rows):
    records = read_metadata(CXR_ROOT / "metadata.csv")
    archives = archives_beside(CXR_ROOT / "metadata.csv")
    joined = [(r, a) for r, a in zip(records, archive_of(records, archives), strict=True) if a is not None]
    expected = [row for row in archive_rows if row["archive"] not in NOT_ONE_ARCHIVE]
    assert len(joined) == len(expected) > 0
    assert Counter((a, r.label) for r, a in joined) == Counter((row["archive"], row["label"]) for row in expected)
    assert all(r.dataset == "ieee8023" for r, _ in joined)


def test_within_archive_auc_is_scikit_learns_on_that_archives_covid_and_pneumonia_films(archive_rows):
    rng = np.random.default_rng(1)
    labels = np.array([CLASSES.index(row["label"]) for row in archive_rows])
    # COVID-19 films score a little higher on average, so that each archive's AUC is neither 0.5 nor 1
    probabilities = rng.dirichlet([1, 1, 1], len(labels)) + 0.3 * np.eye(3)[labels] * (labels == COVID)[:, None]
    probabilities /= probabilities.sum(1, keepdims=True)
    groups = [None if row["archive"] in NOT_ONE_ARCHIVE else row["archive"] for row in archive_rows]

    measured = covid_vs_pneumonia_auc_by_group(probabilities, labels, groups)

    counts = Counter((g, CLASSES[y]) for g, y in zip(groups, labels, strict=True))
    both = {g for g in set(groups) - {None} if min(counts[g, "covid"], counts[g, "pneumonia"]) >= MIN_FILMS_PER_CLASS}
    assert set(measured) == both == {"eurorad", "radiopaedia"}  # SIRM, Hannover, Figure1: COVID-19 only
    for archive, m in measured.items():
        members = np.array([g == archive for g in groups])
        assert m["n_covid"] == counts[archive, "covid"] and m["n_pneumonia"] == counts[archive, "pneumonia"]
        assert m["auc"]["value"] == pytest.approx(within(probabilities, labels, members), abs=1e-12)
        assert m["auc"]["low"] <= m["auc"]["value"] <= m["auc"]["high"]
        assert 0.5 < m["auc"]["value"] < 1.0


def test_evaluate_writes_each_archives_auc_from_the_models_own_predictions(
    archive_rows, weights_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr(metrics_module, "BOOTSTRAP_ROUNDS", 20)  # the intervals' width is not what is tested
    chosen, taken = [], Counter()
    for row in archive_rows:  # a few films of each class of the two archives that hold both, and SIRM's
        key = (row["archive"], row["label"])
        if key[0] in ("eurorad", "radiopaedia", "sirm") and key[1] != "normal" and taken[key] < FILMS_PER_CLASS:
            chosen.append(row)
            taken[key] += 1
    metadata = tmp_path / "metadata.csv"
    with metadata.open("w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "label"])
        writer.writeheader()
        writer.writerows({"path": row["path"], "label": row["label"]} for row in chosen)
    (tmp_path / ARCHIVES_FILE).write_bytes((CXR_ROOT / ARCHIVES_FILE).read_bytes())  # beside the metadata
    out = tmp_path / "report.json"
    argv = ["--weights-dir", str(weights_dir), "evaluate", "--metadata", str(metadata), "--root", str(CXR_ROOT)]
    argv += ["--backbone", "resnet18", "--no-shortcuts", "--out", str(out)]
    assert main(argv) == 0

    report = read_report(out)
    model = covidnet.load("resnet18", weights_dir=weights_dir)
    films = [covidnet.read_scan(CXR_ROOT / row["path"]) for row in chosen]
    predicted = model.classifier.probabilities(model.forward(films).logits)
    probabilities = np.array([[p[c] for c in CLASSES] for p in predicted])
    labels = np.array([CLASSES.index(row["label"]) for row in chosen])
    for metrics in (report.backbones["resnet18"].metrics, report.ensemble.metrics):
        by_archive = metrics.covid_vs_pneumonia_auc_by_archive
        assert set(by_archive) == {"eurorad", "radiopaedia"}  # SIRM holds COVID-19 only
        for archive, m in by_archive.items():
            assert (m.n_covid, m.n_pneumonia) == (FILMS_PER_CLASS, FILMS_PER_CLASS)
            members = np.array([row["archive"] == archive for row in chosen])
            assert m.auc.value == pytest.approx(within(probabilities, labels, members), abs=1e-6)
