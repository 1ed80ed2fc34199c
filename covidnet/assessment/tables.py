"""Markdown tables (and the shortcut findings) built from the evaluation reports, the gate report, the
checkpoints' metadata and the data: shared by the Model card page and by ``docs/model_card.md``'s generator.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from covidnet.assessment.archives import archive_name
from covidnet.assessment.metrics import COVID_SPECIFICITY
from covidnet.assessment.reports import (
    EvaluationReport,
    GateReport,
    HeatmapInLungs,
    Interval,
    LeaveOneOutReport,
    Metrics,
    SourceMetrics,
)
from covidnet.assessment.shortcuts import SALIENCY_MAX_SPEARMAN, SHORTCUT_MARGIN
from covidnet.classes import CLASSES
from covidnet.inference.predictor import IN_LUNGS_ALARM
from covidnet.models.metadata import CheckpointMetadata
from covidnet.training.data import read_metadata
from covidnet.training.splits import SPLITS, read_split_file

# The reports the tables show (``reports.REPORT_NAMES``; the validation report only chooses a threshold).
REPORT_TITLES = {
    "internal_test": "Internal test (patient-level split)",
    "external": "External source (never trained on)",
}


def shown(reports: dict[str, EvaluationReport]) -> dict[str, EvaluationReport]:
    """The reports of ``REPORT_TITLES`` among ``reports``, in that order."""
    return {name: reports[name] for name in REPORT_TITLES if name in reports}


def results_table(reports: dict[str, EvaluationReport]) -> str:
    """A Markdown table: one row per model and data set, with bootstrap intervals."""
    archives = archives_measured(m for r in shown(reports).values() for m in r.models().values())
    lines = [
        "| data | model | n | macro AUC | accuracy | COVID-19 sensitivity | COVID-19 specificity "
        f"| COVID-19 sens. at {COVID_SPECIFICITY:.0%} spec. | COVID-19 vs pneumonia AUC "
        f"| {within_archive_header(archives)} | ECE |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, report in shown(reports).items():
        for model, m in report.models().items():
            covid = m.per_class["covid"]
            lines.append(
                f"| {REPORT_TITLES[name]} | {model} | {m.n} | {_ci(m.macro_auc)} | {_ci(m.accuracy)} | "
                f"{_ci(covid.sensitivity)} | {_ci(covid.specificity)} | "
                f"{_ci(m.covid_sensitivity_at_95_specificity)} | "
                f"{_ci(m.covid_vs_pneumonia_auc) if m.covid_vs_pneumonia_auc else '–'} | "
                f"{within_archive_cell(m, archives)} | {m.ece:.3f} |"
            )
    return "\n".join(lines)


def archives_measured(metrics: Iterable[Metrics]) -> list[str]:
    """The archives with a within-archive COVID-19 vs pneumonia AUC in any of ``metrics``, sorted."""
    return sorted({a for m in metrics for a in m.covid_vs_pneumonia_auc_by_archive or {}})


def within_archive_header(archives: list[str]) -> str:
    """The column heading of ``within_archive_cell``, naming ``archives`` in its order."""
    names = f" ({' / '.join(archive_name(a) for a in archives)})" if archives else ""
    return f"COVID-19 vs pneumonia AUC within archive{names}"


def within_archive_cell(m: Metrics, archives: list[str]) -> str:
    """The COVID-19 vs pneumonia AUC within each of ``archives`` with its interval, in that order and separated by
    "/" ("–" for an archive the metrics lack, a single "–" when they lack them all)."""
    by_archive = m.covid_vs_pneumonia_auc_by_archive or {}
    if not any(a in by_archive for a in archives):
        return "–"
    return " / ".join(_ci(by_archive[a].auc) if a in by_archive else "–" for a in archives)


def within_archive_counts(reports: dict[str, EvaluationReport]) -> str:
    """The films each within-archive AUC of the shown reports is measured on, per report and archive (empty when
    no shown report has one)."""
    parts = []
    for name, report in shown(reports).items():
        by_archive = report.ensemble.metrics.covid_vs_pneumonia_auc_by_archive or {}
        counts = ", ".join(
            f"{archive_name(a)} {m.n_covid} COVID-19 / {m.n_pneumonia} pneumonia" for a, m in by_archive.items()
        )
        if counts:
            parts.append(f"{counts} in the {REPORT_TITLES[name].lower()}")
    return "; ".join(parts)


def source_table(reports: dict[str, EvaluationReport]) -> str:
    """A Markdown table: each backbone on each data source's scans of each shown report (reports written before
    per-source figures were measured are left out; empty when none has them)."""
    lines = []
    for name, report in shown(reports).items():
        for model, result in report.backbones.items():
            for source, m in (result.by_source or {}).items():
                lines.append(f"| {REPORT_TITLES[name]} | {model} | {source} | {_source_cells(m)} |")
    if not lines:
        return ""
    header = "| data | model | source | n (COVID-19 / Normal / Pneumonia) | accuracy | macro AUC | sensitivity |"
    return "\n".join([header, "|---|---|---|---|---|---|---|", *lines])


def leave_one_out_table(report: LeaveOneOutReport) -> str:
    """A Markdown table: per left-out source, the model trained without it on that source and on the rest."""
    lines = [
        "| left out | trained for | trained on (COVID-19 / Normal / Pneumonia) | n (COVID-19 / Normal / Pneumonia) "
        "| accuracy | macro AUC | sensitivity | validation macro AUC (without it) "
        "| internal test macro AUC (without it) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for source, r in report.sources.items():
        trained = "–" if r.train_images is None else " / ".join(str(r.train_images.get(c, 0)) for c in CLASSES)
        lines.append(
            f"| {source} | {r.seconds / 60:.0f} min | {trained} | {_source_cells(r.left_out)} "
            f"| {r.validation_macro_auc:.3f} | {r.internal_test_macro_auc:.3f} |"
        )
    return "\n".join(lines)


def _source_cells(m: SourceMetrics) -> str:
    counts = " / ".join(str(m.class_counts[c]) for c in CLASSES)
    auc = "–" if m.macro_auc is None else f"{m.macro_auc:.3f}"
    sensitivity = ", ".join(f"{c} {v:.2f}" for c, v in m.sensitivity.items() if v is not None)
    return f"{m.n} ({counts}) | {m.accuracy:.3f} | {auc} | {sensitivity}"


def shortcut_table(reports: dict[str, EvaluationReport]) -> str:
    lines = [
        "| data | model | accuracy | lungs found (n) | accuracy there | lungs masked | all but lungs masked "
        "| top & corners masked | majority class | source probe (majority) "
        "| Grad-CAM vs randomised (median Spearman) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, report in shown(reports).items():
        for model, b in report.backbones.items():
            s = b.shortcuts
            if s is None:
                continue
            probe = s.source_probe
            probe_text = (
                "n/a (one source)"
                if probe.accuracy is None
                else f"{probe.accuracy:.3f} ({probe.majority_baseline:.3f})"
            )
            lines.append(
                f"| {REPORT_TITLES[name]} | {model} | {s.accuracy:.3f} | {s.lung_masked_n} | {s.accuracy_on_those:.3f} "
                f"| {s.accuracy_lungs_masked:.3f} | {s.accuracy_outside_lungs_masked:.3f} | "
                f"{s.accuracy_top_and_corners_masked:.3f} | {s.majority_class_accuracy:.3f} | {probe_text} | "
                f"{s.saliency_sanity.median_spearman:.2f} |"
            )
    return "\n".join(lines)


def heatmap_in_lungs(reports: dict[str, EvaluationReport]) -> dict[str, dict[str, HeatmapInLungs]]:
    """Report title → backbone → heatmap-in-lungs over all of its scans (backbones without shortcut checks left
    out)."""
    return {
        REPORT_TITLES[name]: {m: b.shortcuts.heatmap_in_lungs["all"] for m, b in r.backbones.items() if b.shortcuts}
        for name, r in shown(reports).items()
    }


def heatmap_in_lungs_table(reports: dict[str, EvaluationReport]) -> str:
    """Median share of each Grad-CAM heatmap's mass inside the lungs, and the share of heatmaps with more than half
    of it there, per data set, backbone and true class."""
    classes = list(CLASSES)
    above = f"median (share > {IN_LUNGS_ALARM:.0%})"
    lines = [
        f"| data | model | n | all: {above} | "
        + " | ".join(f"{c}: {above}" for c in classes)
        + " | lung area (median) |",
        "|---|---|---|---|" + "---|" * (len(classes) + 1),
    ]
    for name, report in shown(reports).items():
        for model, b in report.backbones.items():
            if b.shortcuts is None:
                continue
            groups = b.shortcuts.heatmap_in_lungs
            cells = [_in_lungs(groups.get(key)) for key in ("all", *classes)]
            area = groups["all"].lung_area_median
            cells.append("n/a" if area is None else f"{area:.2f}")
            lines.append(f"| {REPORT_TITLES[name]} | {model} | {groups['all'].n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _in_lungs(group: HeatmapInLungs | None) -> str:
    if group is None or group.median is None:
        return "n/a"
    return f"{group.median:.2f} ({group.share_above_half:.0%})"


def shortcut_findings(reports: dict[str, EvaluationReport]) -> list[str]:
    """Plain sentences on what the shortcut checks found."""
    findings = []
    for name, report in shown(reports).items():
        title = REPORT_TITLES[name].lower()
        for model, b in report.backbones.items():
            s = b.shortcuts
            if s is None:
                continue
            if s.accuracy_lungs_masked > s.majority_class_accuracy + SHORTCUT_MARGIN:
                findings.append(
                    f"**{model}, {title}: it still reaches {s.accuracy_lungs_masked:.0%} accuracy "
                    f"with the lungs blacked out** (majority class: {s.majority_class_accuracy:.0%}). "
                    "It has learned cues outside the lungs (patient age and body size, positioning, "
                    "source-specific image traits): part of its accuracy is a shortcut, not lung disease."
                )
            inside = s.heatmap_in_lungs["all"]
            if inside.median is not None and inside.median < IN_LUNGS_ALARM:
                findings.append(
                    f"**{model}, {title}: the median heatmap has only {inside.median:.0%} of its mass inside the "
                    f"lungs**, and {1 - inside.share_above_half:.0%} of its heatmaps have most of it outside them: "
                    "what drives its predictions lies mostly outside the lungs."
                )
            sanity = s.saliency_sanity.median_spearman
            if sanity >= SALIENCY_MAX_SPEARMAN:
                findings.append(
                    f"**{model}, {title}: its Grad-CAM barely changes when the explained layers are "
                    f"re-initialised** (median rank correlation {sanity:.2f}, at or above {SALIENCY_MAX_SPEARMAN}): "
                    "its heatmaps there follow the image's structure more than what the model learned; read them "
                    "with caution."
                )
            probe = s.source_probe
            if probe.accuracy is not None and probe.accuracy > probe.majority_baseline + SHORTCUT_MARGIN:
                findings.append(
                    f"{model}, {title}: a linear probe on its features tells the data source apart "
                    f"with {probe.accuracy:.0%} accuracy (majority {probe.majority_baseline:.0%}): the features "
                    "encode where an image came from."
                )
    return findings


def gate_table(reports: dict[str, EvaluationReport], gate_report: GateReport | None) -> str:
    """Share of real chest X-rays (internal test) and of non-X-ray images flagged by each backbone's gate."""
    if gate_report is None:
        return "The chest X-ray gate has not been measured yet (`covidnet gate-report`)."
    test = reports["internal_test"].backbones if "internal_test" in reports else {}
    lines = [
        "| backbone | gate of | chest X-rays flagged (internal test) "
        f"| non-X-ray images flagged (n = {gate_report.n}) | lowest share flagged, by kind |",
        "|---|---|---|---|---|",
    ]
    for name, row in gate_report.backbones.items():
        real = f"{test[name].gate.flagged_share:.1%}" if name in test else "n/a"
        kind, share = min(row.flagged_share_by_kind.items(), key=lambda kv: kv[1])
        lines.append(f"| {name} | {row.gate_of} | {real} | {row.flagged_share:.1%} | {kind}: {share:.0%} |")
    return "\n".join(lines)


def gate_breakdown_table(reports: dict[str, EvaluationReport]) -> str:
    """Share of real chest X-rays flagged by the gate, per evaluation split, data source and true class."""
    reports = shown(reports)
    names = sorted({n for r in reports.values() for n in r.backbones})
    lines = ["| split | group | n | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    for split, report in reports.items():
        for by, label in (("by_source", "source {}"), ("by_class", "class {}")):
            flags = {name: getattr(b.gate, by) for name, b in report.backbones.items()}
            groups = {g: row.n for rows in flags.values() for g, row in rows.items()}
            for group, n in sorted(groups.items()):
                rows = [flags.get(name, {}).get(group) for name in names]
                cells = ["n/a" if row is None else f"{row.flagged_share:.1%}" for row in rows]
                lines.append(f"| {REPORT_TITLES[split]} | {label.format(group)} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def data_tables(metadata_csv: Path, split_file: Path) -> tuple[str, str]:
    """Provenance (source, dataset, licence, counts) and split counts, in Markdown."""
    records = read_metadata(metadata_csv)
    assigned = read_split_file(split_file)
    provenance = Counter((r.source, r.dataset, r.license or "not stated", r.label) for r in records)
    rows = sorted({(s, d, lic) for s, d, lic, _ in provenance})
    source_lines = [
        "| source repository | original dataset | licence as stated | COVID-19 | Normal | Pneumonia |",
        "|---|---|---|---|---|---|",
    ]
    for s, d, lic in rows:
        counts = " | ".join(str(provenance[(s, d, lic, c)]) for c in CLASSES)
        source_lines.append(f"| {s} | {d} | {lic} | {counts} |")
    splits = Counter((assigned[r.sha256].split, r.label) for r in records)
    split_lines = ["| split | COVID-19 | Normal | Pneumonia | total |", "|---|---|---|---|---|"]
    for name in SPLITS:
        counts = [splits[(name, c)] for c in CLASSES]
        split_lines.append(f"| {name} | " + " | ".join(map(str, counts)) + f" | {sum(counts)} |")
    return "\n".join(source_lines), "\n".join(split_lines)


def model_table(metas: list[CheckpointMetadata]) -> str:
    lines = [
        "| backbone | initialisation | input | parameters | file | epochs (best) | training time | temperature |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for meta in metas:
        t = meta.training
        lines.append(
            f"| {meta.backbone} | {meta.init} | {meta.input_size}px | {meta.parameters / 1e6:.1f} M | "
            f"{meta.size_bytes / 2**20:.1f} MB {meta.dtype} | {len(t.get('history', []))} ({t.get('best_epoch')}) | "
            f"{t.get('seconds', 0) / 60:.0f} min | {meta.temperature:.2f} |"
        )
    total = sum(meta.training.get("seconds", 0) for meta in metas) / 60
    lines.append(f"| **all** | | | | | | **{total:.0f} min** | |")
    return "\n".join(lines)


def _ci(metric: Interval) -> str:
    if metric.value is None:
        return "n/a"
    return f"{metric.value:.3f} ({metric.low:.3f}–{metric.high:.3f})"
