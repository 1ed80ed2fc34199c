"""The model card's sections on "uncertain" (chosen on unseen-source films, its risk–coverage curves) and on what
changed since the previous shipped models (old and new side by side on the same sets). Every figure comes from
the reports."""

from __future__ import annotations

from covidnet.assessment.evaluation_report import EvaluationReport
from covidnet.assessment.metric_records import Metrics
from covidnet.assessment.report_schema import REPORT_NAMES
from covidnet.assessment.tables import archives_measured
from covidnet.assessment.thresholds import Point
from covidnet.assessment.uncertain_report import UncertainReport
from covidnet.classes import TASK, display_name

CURVE_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)  # the rows of the risk–coverage table (plus each chosen one)
INTERNAL, EXTERNAL = REPORT_NAMES["test"], REPORT_NAMES["external"]


def uncertain_section(report: UncertainReport | None) -> str:
    """Where each model's "uncertain" threshold was chosen, what it did on the held-back half, and the curves."""
    if report is None:
        return ""
    rows = [
        f"| {name} | {m.threshold:.2f} | {m.checked.n} | {_share(m.checked.answered)} | {_share(m.checked.accuracy)} | "
        f"{_share(m.checked.wrong_answered, 1)} | {_by_source(m.checked_by_source)} |"
        for name, m in report.models.items()
    ]
    curve = [
        f"| {name} | {p.threshold:.2f}{' (chosen)' if p.threshold == m.threshold else ''} | "
        f"{_share(q.answered)} / {_share(q.accuracy)} | {_share(p.answered)} / {_share(p.accuracy)} |"
        for name, m in report.models.items()
        for p, q in zip(m.unseen_curve, m.internal_curve, strict=True)
        if round(p.threshold, 2) in CURVE_THRESHOLDS or p.threshold == m.threshold
    ]
    sources = {name: m.unseen for name, m in report.models.items()}
    return f"""
## When a model says "uncertain"
A model answers when its top calibrated probability reaches its threshold, and says "uncertain" below it. Each
threshold is chosen on films from **sources that model never trained on**: the lowest at which the films answered
and wrong are at most {report.max_wrong_answered:.0%} of those films{_confidence(report.bound_confidence)}. Films
are split into two halves by patient; the threshold is chosen on one half and measured on the other, which the
table shows. The films were:
{chr(10).join(f"- {name}: {described}" for name, described in sources.items())}

| model | uncertain below | films (held-back half) | answered | right among answered | answered and wrong | by source |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Risk–coverage: at each threshold, the share of films answered / the share of those answers that were right, on the
internal test split (sources it trained on) and on every unseen-source film above.

| model | threshold | internal test: answered / right | unseen sources: answered / right |
|---|---|---|---|
{chr(10).join(curve)}
"""


def changes_section(previous: dict[str, EvaluationReport], current: dict[str, EvaluationReport]) -> str:
    """Each backbone whose weights changed since the ``previous`` reports: old and new on the same sets."""
    if INTERNAL not in previous or INTERNAL not in current:
        return ""
    changed = [
        name
        for name, result in current[INTERNAL].backbones.items()
        if name in previous[INTERNAL].backbones
        and previous[INTERNAL].backbones[name].weights_sha256 != result.weights_sha256
    ]
    if not changed:
        return ""
    blocks = []
    for name in changed:
        rows = [f"| {label} | {before} | {after} |" for label, before, after in _changes(name, previous, current)]
        blocks.append(f"**{name}**\n\n| measure | previous | now |\n|---|---|---|\n" + "\n".join(rows))
    return "\n## What changed\nModels retrained since the previous release, old and new on the same films:\n\n" + (
        "\n\n".join(blocks) + "\n"
    )


def _changes(
    name: str, previous: dict[str, EvaluationReport], current: dict[str, EvaluationReport]
) -> list[tuple[str, str, str]]:
    """(measure, previous value, current value) rows for backbone ``name``."""
    rows = []
    for report_name, where in ((INTERNAL, "internal test"), (EXTERNAL, "external (ieee8023)")):
        if report_name not in previous or report_name not in current:
            continue
        old, new = previous[report_name].backbones[name].metrics, current[report_name].backbones[name].metrics
        rows.append((f"{where}: macro AUC", f"{old.macro_auc.value:.3f}", f"{new.macro_auc.value:.3f}"))
        for label in TASK.classes:
            rows.append((f"{where}: {display_name(label)} found", _sensitivity(old, label), _sensitivity(new, label)))
        for archive in archives_measured([old, new]):
            rows.append((f"{where}: {_confusable()} AUC within {archive}", _within(old, archive),
                         _within(new, archive)))  # fmt: skip
    return rows


def _by_source(points: dict[str, Point]) -> str:
    return "; ".join(
        f"{source}: {_share(p.answered)} answered, {_share(p.wrong_answered, 1)} wrong" for source, p in points.items()
    )


def _confusable() -> str:
    return " vs ".join(display_name(label) for label in TASK.confusable)


def _sensitivity(m: Metrics, label: str) -> str:
    value = m.per_class[label].sensitivity.value
    return "–" if value is None else f"{value:.2f}"


def _within(m: Metrics, archive: str) -> str:
    found = (m.covid_vs_pneumonia_auc_by_archive or {}).get(archive)
    return "–" if found is None or found.auc.value is None else f"{found.auc.value:.3f}"


def _share(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}%}"


def _confidence(confidence: float | None) -> str:
    """How the bound was shown on the films the threshold was chosen on."""
    if confidence is None:
        return " (as observed on them)"
    return (
        f", shown with {confidence:.0%} confidence (the one-sided Clopper–Pearson upper bound of that share meets "
        "it, so that the bound also holds on films it was not chosen on)"
    )
