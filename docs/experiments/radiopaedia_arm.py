"""Issue 22's within-archive arm, tabulated: models on the ieee8023 films that stay external once Radiopaedia's move
into training (``radiopaedia_split.py``), each from an ``evaluate --split external --split-file SPLIT`` report.

    python docs/experiments/radiopaedia_arm.py NAME=REPORT [NAME=REPORT ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from covidnet.assessment.report_files import read_report
from covidnet.classes import TASK


def row(name: str, report_path: Path) -> str:
    (result,) = read_report(report_path).backbones.values()
    m = result.metrics
    auc = m.covid_vs_pneumonia_auc
    eurorad = (m.covid_vs_pneumonia_auc_by_archive or {})["eurorad"].auc
    found = {c: m.per_class[c].sensitivity.value for c in (TASK.of_interest, TASK.other_disease)}
    return (
        f"| {name} | {m.n} | {m.macro_auc.value:.3f} | {auc.value:.3f} ({auc.low:.3f}–{auc.high:.3f}) | "
        f"{eurorad.value:.3f} ({eurorad.low:.3f}–{eurorad.high:.3f}) | "
        f"{found[TASK.of_interest]:.2f} / {found[TASK.other_disease]:.2f} |"
    )


def main() -> None:
    print("| model | films | macro AUC | COVID-19 vs pneumonia AUC, pooled | within Eurorad | ", end="")
    print("COVID-19 / pneumonia found |")
    print("|---|---|---|---|---|---|")
    for argument in sys.argv[1:]:
        name, path = argument.split("=", 1)
        print(row(name, Path(path)))


if __name__ == "__main__":
    main()
