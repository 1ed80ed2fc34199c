"""Side by side: the evaluation reports of training experiments (and of the shipped models), as Markdown.

    python docs/experiments/compare.py NAME=REPORTS_DIR [NAME=REPORTS_DIR ...] > table.md
    python docs/experiments/compare.py --leave-one-out REPORT.json   # the model card's leave-one-source-out table
    python docs/experiments/compare.py --ablation NAME=RUN_DIR [...]  # one row per training run, its choices first

A reports folder holds ``internal_test.json`` and ``external.json`` as ``covidnet evaluate --split test|external``
writes them. One row per experiment, backbone and split: macro AUC with its interval, COVID-19 sensitivity and
specificity (at the predicted class, and at the ROC point with 85% sensitivity), pneumonia sensitivity and AUC,
the COVID-19 vs pneumonia AUC within each ieee8023 archive that holds both (Eurorad, Radiopaedia; external only,
"–" in reports written before it was measured), heatmap mass inside the lungs (median, and share of scans above
half), and the source probe's accuracy next to its majority baseline (internal test only: one source outside).

``--ablation`` reads a run folder (its ``<backbone>.json`` metadata next to the reports, as ``docs/experiments/abl_*``
hold them) and puts first what the run was chosen on, never ieee8023: the validation macro AUC of the selected
epoch (validation with the held-out source's training films moved in) and the share of the held-out source's
validation and test films it finds; then the internal test and ieee8023 figures as above, with ieee8023's
COVID-19-against-pneumonia AUC (the COVID-19 probability on its COVID-19 and pneumonia films only; "–" in reports
written before it was measured), pooled and within each archive.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from covidnet.assessment.evaluation_report import BackboneResult, EvaluationReport
from covidnet.assessment.report_files import read_leave_one_out_report, read_report
from covidnet.assessment.tables import (
    archives_measured,
    leave_one_out_table,
    within_archive_cell,
    within_archive_header,
)
from covidnet.models.registry import backbones

SPLITS = {"internal_test": "internal test", "external": "external (ieee8023)"}
SENSITIVITY = 0.85  # the operating point: COVID-19 specificity at this sensitivity


def specificity_at(roc: dict[str, list[float]], sensitivity: float) -> float:
    """The best specificity on the ROC curve among points with at least ``sensitivity``."""
    return max(1 - f for f, t in zip(roc["fpr"], roc["tpr"], strict=True) if t >= sensitivity)


def rows(name: str, reports: dict[str, EvaluationReport], archives: list[str]) -> list[str]:
    """One experiment's rows: each backbone on each split of ``SPLITS`` (``reports``, by split)."""
    lines = []
    for split, title in SPLITS.items():
        for backbone, result in reports[split].backbones.items():
            m, checks = result.metrics, result.shortcuts
            covid, pneumonia = m.per_class["covid"], m.per_class["pneumonia"]
            in_lungs = checks.heatmap_in_lungs["all"] if checks else None
            probe = checks.source_probe if checks else None
            lines.append(
                f"| {name} | {backbone} | {title} | {m.n} | {m.macro_auc.value:.3f} "
                f"({m.macro_auc.low:.3f}–{m.macro_auc.high:.3f}) | {covid.sensitivity.value:.2f} / "
                f"{covid.specificity.value:.2f} | {specificity_at(m.roc['covid'], SENSITIVITY):.2f} | "
                f"{pneumonia.sensitivity.value:.2f} / {pneumonia.auc.value:.3f} | "
                f"{within_archive_cell(m, archives)} | "
                + (f"{in_lungs.median:.2f} ({in_lungs.share_above_half:.0%})" if in_lungs else "–")
                + " | "
                + (f"{probe.accuracy:.2f} ({probe.majority_baseline:.2f})" if probe and probe.accuracy else "–")
                + " |"
            )
    return lines


ADULT_PNEUMONIA = ("nih-chestxray8", "rsna-lung-opacity")
RUN_REPORTS = ("validation", "internal_test", "external")
ABLATION_SETTINGS = ("epochs", "init", "lr", "seed", "crop", "intensity", "augment", "balance", "adversary")


def run_backbone(folder: Path) -> str:
    """The backbone a run folder trained: the one whose metadata (``<backbone>.json``) lies beside the reports."""
    (name,) = [p.stem for p in folder.glob("*.json") if p.stem in backbones()]
    return name


def run_reports(folder: Path) -> dict[str, BackboneResult]:
    """A training run's model on each split of ``RUN_REPORTS``."""
    name = run_backbone(folder)
    return {split: read_report(folder / f"{split}.json").backbones[name] for split in RUN_REPORTS}


def ablation_row(name: str, folder: Path, reports: dict[str, BackboneResult], archives: list[str]) -> str:
    """One training run: its choices, what it was selected on, and the internal test and ieee8023 figures."""
    meta = json.loads((folder / f"{run_backbone(folder)}.json").read_text())
    training = meta["training"]
    settings = training["settings"]
    choices = ", ".join(
        [meta["backbone"], f"{meta['input_size']} px", *(f"{k} {settings.get(k)}" for k in ABLATION_SETTINGS)]
    )
    selected = next(h for h in training["history"] if h["epoch"] == training["best_epoch"])
    held_out = [
        m
        for split in ("validation", "internal_test")
        for source, m in (reports[split].by_source or {}).items()
        if source in training.get("held_out_sources", [])
    ]
    total = sum(m.n for m in held_out)
    found = sum(m.accuracy * m.n for m in held_out)
    cells = [name, choices, f"{training['seconds'] / 60:.0f} min", f"{training['best_epoch']}",
             f"{selected['val_macro_auc']:.3f}", f"{found / total:.2f} of {total}" if total else "–"]  # fmt: skip
    for split in ("internal_test", "external"):
        result = reports[split]
        m, checks = result.metrics, result.shortcuts
        cells.append(f"{m.macro_auc.value:.3f}")
        if split == "external":
            cells.append(f"{specificity_at(m.roc['covid'], SENSITIVITY):.2f}")
            pair = m.covid_vs_pneumonia_auc  # None in reports written before it was measured
            cells.append(f"{pair.value:.3f} ({pair.low:.2f}–{pair.high:.2f})" if pair else "–")
            cells.append(within_archive_cell(m, archives))
            cells.append(f"{m.per_class['pneumonia'].sensitivity.value:.2f}")
        in_lungs = checks.heatmap_in_lungs["all"] if checks else None
        cells.append(f"{in_lungs.median:.2f}" if in_lungs else "–")
        if split == "internal_test":
            probe = checks.source_probe if checks else None
            cells.append(f"{probe.accuracy:.2f} ({probe.majority_baseline:.2f})" if probe and probe.accuracy else "–")
            cells.append(" / ".join(_adult_pneumonia_found(result.by_source or {})))
    return "| " + " | ".join(cells) + " |"


def _adult_pneumonia_found(by_source: dict) -> list[str]:
    """The pneumonia sensitivity on each adult pneumonia source of the internal test (NIH, then RSNA)."""
    found = []
    for prefix in ADULT_PNEUMONIA:
        rates = [m.sensitivity["pneumonia"] for name, m in by_source.items() if name.startswith(prefix)]
        found.append(f"{rates[0]:.2f}" if rates and rates[0] is not None else "–")
    return found


def main(arguments: list[str]) -> None:
    if arguments[0] == "--leave-one-out":
        print(leave_one_out_table(read_leave_one_out_report(Path(arguments[1]))))
        return
    if arguments[0] == "--ablation":
        folders = {name: Path(folder) for name, folder in (a.split("=", 1) for a in arguments[1:])}
        runs = {name: run_reports(folder) for name, folder in folders.items()}
        archives = archives_measured(r.metrics for reports in runs.values() for r in reports.values())
        print(
            "| run | choices | trained for | epoch | selection: validation macro AUC | held-out source found "
            "| internal test macro AUC | heatmap in lungs (internal, median) | source probe (majority) "
            "| adult pneumonia found (NIH / RSNA, internal) "
            f"| ieee8023 macro AUC | COVID-19 spec. at {SENSITIVITY:.0%} sens. | COVID-19 vs pneumonia AUC (95% CI) "
            f"| {within_archive_header(archives)} (95% CI) | pneumonia sens. | heatmap in lungs (ieee8023, median) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name, folder in folders.items():
            print(ablation_row(name, folder, runs[name], archives))
        return
    experiments = {
        name: {split: read_report(Path(folder) / f"{split}.json") for split in SPLITS}
        for name, folder in (a.split("=", 1) for a in arguments)
    }
    archives = archives_measured(
        b.metrics for reports in experiments.values() for r in reports.values() for b in r.backbones.values()
    )
    print(
        "| model | backbone | data | n | macro AUC (95% CI) | COVID-19 sens. / spec. "
        f"| COVID-19 spec. at {SENSITIVITY:.0%} sens. | pneumonia sens. / AUC | {within_archive_header(archives)} "
        "| heatmap in lungs: median (share > 50%) | source probe (majority) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, reports in experiments.items():
        print("\n".join(rows(name, reports, archives)))


if __name__ == "__main__":
    main(sys.argv[1:])
