"""The shipping rule's script (docs/experiments/shipping_rule.py) on the committed reports and on made-up figures."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = ROOT / "docs" / "experiments" / "unseen_rounds"
_spec = importlib.util.spec_from_file_location("shipping_rule", ROOT / "docs" / "experiments" / "shipping_rule.py")
rule = sys.modules["shipping_rule"] = importlib.util.module_from_spec(_spec)  # dataclasses look it up
_spec.loader.exec_module(rule)


def test_the_rule_reads_the_committed_reports_and_refuses_a_model_worse_on_unseen_sources():
    incumbent = rule.measure("resnet18", ROOT / "docs/experiments/i20_shipped", ROUNDS / "loso_r18old")
    candidate = rule.measure("mobilenet_v2", ROOT / "docs/experiments/i20_shipped", ROUNDS / "loso_tl")
    assert incumbent.films == candidate.films == 484 + 669 + 974  # ieee8023, and every NIH and RSNA pool film
    assert candidate.pneumonia_found["rsna-lung-opacity"] > incumbent.pneumonia_found["rsna-lung-opacity"]
    ships, reasons = rule.verdict(incumbent, candidate)
    assert not ships and "worse on c" in reasons[1]


def test_better_on_two_and_worse_on_none_ships_and_the_floor_holds():
    base = rule.Measured(
        "m", 0.95, {"nih": 0.5, "rsna": 0.5}, {"eurorad": 0.7, "radiopaedia": 0.7}, 0.9, 0.05, 0.5, 100
    )
    better = dataclasses.replace(base, pneumonia_found={"nih": 0.6, "rsna": 0.6}, wrong_not_flagged=0.04)
    assert rule.verdict(base, better)[0]
    assert not rule.verdict(base, dataclasses.replace(better, within_archive={"eurorad": 0.6, "radiopaedia": 0.7}))[0]
    assert not rule.verdict(base, dataclasses.replace(better, internal_macro_auc=0.91))[0]
    assert not rule.verdict(base, dataclasses.replace(base, wrong_not_flagged=0.04))[0]  # better on one only


def test_answered_and_wrong_come_from_the_films_at_any_threshold_and_match_the_curve_on_its_grid():
    report = rule.read_report(ROUNDS / "loso_tl" / "nih-chestxray8" / "left_out.json")
    (name, result), films = next(iter(report.backbones.items())), report.films
    for threshold in (0.8, 0.9, 0.95):
        from_films = rule._selective_at(result.metrics, threshold, films, name)
        assert from_films == pytest.approx(rule._selective_at(result.metrics, threshold), abs=2e-3)
    answered, wrong = rule._selective_at(result.metrics, 0.87, films, name)  # off the curve's grid
    top = films.of_model(name).max(axis=1)
    assert answered == pytest.approx((top >= 0.87).mean()) and 0 < wrong < answered


def test_rounds_risk_at_equal_coverage_is_pooled_over_both_sources_and_grows_with_coverage():
    table = rule.rounds_risk_table([ROUNDS / "loso_r18old", ROUNDS / "loso_tl"])
    rows = [line.split(" | ") for line in table.splitlines()[2:]]
    assert [row[1] for row in rows] == [str(669 + 974)] * 2  # every NIH and RSNA pool film
    for row in rows:
        shares = [float(s.rstrip("%")) for s in row[2].rstrip(" |").split(" / ")]
        assert shares == sorted(shares) and all(0 <= s <= 100 * c for s, c in zip(shares, rule.COVERAGES, strict=True))
    sets = []
    for source in rule.ADULT_PNEUMONIA:
        report = rule.read_report(ROUNDS / "loso_tl" / source / "left_out.json")
        sets.append((report.films, rule._only(report)[0]))
    top, wrong = (np.concatenate(parts) for parts in zip(*(rule._top_and_wrong(f, m) for f, m in sets), strict=True))
    most_confident_tenth = wrong[np.argsort(-top, kind="stable")][: round(0.1 * len(top))]
    assert rows[1][2].startswith(f"{most_confident_tenth.sum() / len(top):.1%}")
