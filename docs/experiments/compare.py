"""Side by side: the evaluation reports of training experiments (and of the shipped models), as Markdown.

    python docs/experiments/compare.py NAME=REPORTS_DIR [NAME=REPORTS_DIR ...] > table.md
    python docs/experiments/compare.py --leave-one-out REPORT.json   # the model card's leave-one-source-out table

A reports folder holds ``internal_test.json`` and ``external.json`` as ``covidnet evaluate --split test|external``
writes them. One row per experiment, backbone and split: macro AUC with its interval, COVID-19 sensitivity and
specificity (at the predicted class, and at the ROC point with 85% sensitivity), pneumonia sensitivity and AUC,
heatmap mass inside the lungs (median, and share of scans above half), and the source probe's accuracy next to
its majority baseline (internal test only: one source outside).
"""

from __future__ import annotations

import sys
from pathlib import Path

from covidnet.assessment.reports import read_leave_one_out_report, read_report
from covidnet.assessment.tables import leave_one_out_table

SPLITS = {"internal_test": "internal test", "external": "external (ieee8023)"}
SENSITIVITY = 0.85  # the operating point: COVID-19 specificity at this sensitivity


def specificity_at(roc: dict[str, list[float]], sensitivity: float) -> float:
    """The best specificity on the ROC curve among points with at least ``sensitivity``."""
    return max(1 - f for f, t in zip(roc["fpr"], roc["tpr"], strict=True) if t >= sensitivity)


def rows(name: str, folder: Path) -> list[str]:
    lines = []
    for split, title in SPLITS.items():
        report = read_report(folder / f"{split}.json")
        for backbone, result in report.backbones.items():
            m, checks = result.metrics, result.shortcuts
            covid, pneumonia = m.per_class["covid"], m.per_class["pneumonia"]
            in_lungs = checks.heatmap_in_lungs["all"] if checks else None
            probe = checks.source_probe if checks else None
            lines.append(
                f"| {name} | {backbone} | {title} | {m.n} | {m.macro_auc.value:.3f} "
                f"({m.macro_auc.low:.3f}–{m.macro_auc.high:.3f}) | {covid.sensitivity.value:.2f} / "
                f"{covid.specificity.value:.2f} | {specificity_at(m.roc['covid'], SENSITIVITY):.2f} | "
                f"{pneumonia.sensitivity.value:.2f} / {pneumonia.auc.value:.3f} | "
                + (f"{in_lungs.median:.2f} ({in_lungs.share_above_half:.0%})" if in_lungs else "–")
                + " | "
                + (f"{probe.accuracy:.2f} ({probe.majority_baseline:.2f})" if probe and probe.accuracy else "–")
                + " |"
            )
    return lines


def main(arguments: list[str]) -> None:
    if arguments[0] == "--leave-one-out":
        print(leave_one_out_table(read_leave_one_out_report(Path(arguments[1]))))
        return
    print(
        "| model | backbone | data | n | macro AUC (95% CI) | COVID-19 sens. / spec. "
        f"| COVID-19 spec. at {SENSITIVITY:.0%} sens. | pneumonia sens. / AUC "
        "| heatmap in lungs: median (share > 50%) | source probe (majority) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for argument in arguments:
        name, folder = argument.split("=", 1)
        print("\n".join(rows(name, Path(folder))))


if __name__ == "__main__":
    main(sys.argv[1:])
