"""Markdown tables (and the findings) of the checks on the models: shortcut checks, heatmaps against the lungs,
and the chest X-ray gate; shared by the Model card page and by ``docs/model_card.md``'s generator."""

from __future__ import annotations

from covidnet.assessment.evaluation_report import EvaluationReport, HeatmapInLungs
from covidnet.assessment.gate_report import GateReport
from covidnet.assessment.shortcuts import HALF, SALIENCY_MAX_SPEARMAN, SHORTCUT_MARGIN
from covidnet.assessment.tables import REPORT_TITLES, shown
from covidnet.classes import CLASSES


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
    above = f"median (share > {HALF:.0%})"
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
            if inside.median is not None and inside.median < HALF:
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
