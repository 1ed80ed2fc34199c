"""The model card's "uncertain" section (from the unseen-source calibration) and its "What changed" section (old
and new weights on the same films)."""

from dataclasses import replace
from pathlib import Path

import numpy as np

from covidnet.assessment.card_uncertain import changes_section, uncertain_section
from covidnet.assessment.films import Films
from covidnet.assessment.report_files import read_reports
from covidnet.assessment.uncertain_report import UncertainReport, calibrate
from covidnet.classes import CLASSES

ROOT = Path(__file__).resolve().parents[1]
PREVIOUS = ROOT / "docs" / "experiments" / "i20_shipped" / "reports"


def made_up_films(n: int, origin: str, seed: int) -> Films:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(3), n)
    return Films(
        sha256=[f"{origin}{k}" for k in range(n)],
        labels=[CLASSES[k % 3] for k in range(n)],
        origins=[origin] * n,
        patients=[f"{origin}-{k}" for k in range(n)],
        probabilities={"resnet18": p.tolist()},
    )


def test_the_uncertain_section_shows_each_threshold_its_held_back_figures_and_both_curves():
    unseen = [(made_up_films(300, "hospital-x", 0), "resnet18"), (made_up_films(100, "hospital-y", 1), "resnet18")]
    calibration = calibrate(unseen, (made_up_films(200, "internal", 2), "resnet18"), described_as="X and Y",
                            weights_sha256="a" * 64)  # fmt: skip
    section = uncertain_section(UncertainReport(0.05, {"resnet18": calibration}))

    assert f"| resnet18 | {calibration.threshold:.2f} | {calibration.checked.n} |" in section
    assert "hospital-x:" in section and "hospital-y:" in section and "- resnet18: X and Y" in section
    chosen_row = next(line for line in section.splitlines() if "(chosen)" in line)
    assert chosen_row.startswith(f"| resnet18 | {calibration.threshold:.2f} (chosen) |")
    assert "at most 5% of those films (as observed on them)" in section  # chosen without the upper bound
    with_bound = uncertain_section(UncertainReport(0.05, {"resnet18": calibration}, bound_confidence=0.95))
    assert "at most 5% of those films, shown with 95% confidence" in with_bound
    assert uncertain_section(None) == ""


def test_what_changed_compares_only_backbones_whose_weights_changed_on_the_same_films():
    previous = read_reports(PREVIOUS)
    retrained = {name: replace(r.backbones["resnet18"], weights_sha256="b" * 64) for name, r in previous.items()}
    current = {name: replace(r, backbones={**r.backbones, "resnet18": retrained[name]}) for name, r in previous.items()}
    section = changes_section(previous, current)
    assert "**resnet18**" in section and "**densenet121**" not in section
    auc = previous["internal_test"].backbones["resnet18"].metrics.macro_auc.value
    assert f"| internal test: macro AUC | {auc:.3f} | {auc:.3f} |" in section
    assert "within eurorad" in section
    assert changes_section(previous, previous) == ""
