"""What ``covidnet leave-one-out`` prints for each round, including a source that holds one label only."""

from __future__ import annotations

from covidnet.assessment.leave_one_out_report import HeldOutSource
from covidnet.assessment.metric_records import SourceMetrics
from covidnet.cli.train import round_line


def held_out(macro_auc: float | None, sensitivity: dict[str, float | None]) -> HeldOutSource:
    left_out = SourceMetrics(n=974, class_counts={}, accuracy=0.29, macro_auc=macro_auc, sensitivity=sensitivity)
    return HeldOutSource(["kermany"], 0.95, 0.947, left_out, 600.0)


def test_a_one_label_source_prints_what_was_found_instead_of_an_auc():
    line = round_line("rsna-lung-opacity", held_out(None, {"covid": None, "normal": None, "pneumonia": 0.29}))
    assert "macro AUC – (n=974; found: pneumonia 0.29)" in line and "internal test without it 0.947" in line


def test_a_two_label_source_prints_its_auc_and_both_findings():
    line = round_line("nih-chestxray8", held_out(0.488, {"covid": None, "normal": 0.36, "pneumonia": 0.16}))
    assert "macro AUC 0.488" in line and "found: normal 0.36, pneumonia 0.16" in line
