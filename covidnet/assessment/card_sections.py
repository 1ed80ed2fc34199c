"""The model card's optional result sections and sentences (by source, leave one source out, within archive,
the gate's corpus and lung check), each empty or a placeholder when its report is missing."""

from __future__ import annotations

from covidnet.assessment.evaluation_report import EvaluationReport
from covidnet.assessment.gate_report import GateReport
from covidnet.assessment.leave_one_out_report import LeaveOneOutReport
from covidnet.assessment.tables import leave_one_out_table, source_table, within_archive_counts
from covidnet.classes import display_name

FEW_IMAGES = 30  # a class with fewer images than this in a data set has very uncertain metrics there


def by_source_section(reports: dict[str, EvaluationReport]) -> str:
    """The per-source results, when the reports measured them."""
    table = source_table(reports)
    if not table:
        return ""
    return f"""
### By data source
Each data source's scans on their own (no intervals; the macro AUC is over the classes the source holds, "–" for a
source with one class). A source that scores far below the others is one the model reads differently.

{table}
"""


def leave_one_out_section(report: LeaveOneOutReport | None) -> str:
    """The leave-one-source-out table, when it was measured."""
    if report is None:
        return ""
    settings = report.settings
    return f"""
### Leave one source out
`covidnet leave-one-out`: {report.backbone} trained once per data source with two or more labels, without that
source (nor was it used to choose the epoch), on a shorter schedule than the shipped models: {_schedule(settings)}; then
measured on every scan of the left-out source, next to the same model's validation and internal test figures
without it. The gap is what meeting a new source costs.

{leave_one_out_table(report)}
"""


def _schedule(settings: dict) -> str:
    """A training run's settings in words."""
    share = f"one training image in {settings['limit']}" if settings.get("limit") else "every training image"
    return (
        f"{settings['epochs']} epochs on {share}, crop {settings['crop']}, intensity {settings['intensity']}, "
        f"augmentation {settings['augment']}, balance {settings['balance']}, adversary {settings['adversary']}"
    )


def within_archive_note(reports: dict[str, EvaluationReport]) -> str:
    """What the within-archive COVID-19 vs pneumonia AUC is and the films it is measured on (empty when no report
    has it)."""
    counts = within_archive_counts(reports)
    if not counts:
        return ""
    return f"""
The COVID-19 vs pneumonia AUC ranks the COVID-19 probability on the COVID-19 and pneumonia images only. Pooled over
a source whose archives hold different labels it partly tells the archives apart, so it is also given within each
ieee8023 archive that holds both ("–" where a report lacks it), on these films: {counts}.
"""


def few_external_images(reports: dict[str, EvaluationReport]) -> str:
    """A warning when a class has few images in the external test set."""
    if "external" not in reports:
        return ""
    label, n = min(reports["external"].ensemble.metrics.class_counts.items(), key=lambda kv: kv[1])
    if n >= FEW_IMAGES:
        return ""
    return f"The external source has only {n} {label} images: its {label}-class metrics are very uncertain."


def gate_corpus(gate_report: GateReport | None) -> str:
    """What the gate report measured the gate on."""
    if gate_report is None:
        return "a corpus of images that are not chest X-rays, once `covidnet gate-report` has run"
    kinds = ", ".join(f"{kind} {n}" for kind, n in gate_report.kinds.items())
    return (
        f"{gate_report.n} images that are not chest X-rays, built offline by `tests/gate_corpus.py` from "
        f"scikit-image and scikit-learn photos and synthetic images ({kinds}), by `covidnet gate-report`"
    )


def lung_check_sentence(gate_report: GateReport | None) -> str:
    """What the gate's lung check does on its own, as ``covidnet gate-report`` counted it."""
    check = gate_report.lung_check if gate_report else None
    if not check:
        return "The lung check has not been measured on its own yet (`covidnet gate-report` with the lung segmenter)."
    frontal, corpus = check["frontal"], check["corpus"]
    flagged = frontal["no_lung_fields"] + frontal["lateral_view"]
    caught = corpus["no_lung_fields"] + corpus["lateral_view"]
    return (
        f"The lung check on its own flags {flagged} of the {frontal['n']:,} frontal chest X-rays of "
        f'`{check["frontal_data"]}` ({flagged / frontal["n"]:.2%}: {frontal["no_lung_fields"]} "no lung fields '
        f'found", {frontal["lateral_view"]} wrongly called lateral views) and {caught} of the {corpus["n"]} '
        "non-X-ray images. How many real lateral views it catches is not measured: the shared data holds none "
        "(its curators left them out) and none can be downloaded here."
    )


def most_flagged(reports: dict[str, EvaluationReport]) -> str:
    """Which true class the gates flag most often on the internal test split, and what that means."""
    if "internal_test" not in reports:
        return ""
    shares: dict[str, list[float]] = {}
    for result in reports["internal_test"].backbones.values():
        for label, row in result.gate.by_class.items():
            shares.setdefault(label, []).append(row.flagged_share)
    if not shares:
        return ""
    label = max(shares, key=lambda c: sum(shares[c]) / len(shares[c]))
    if not any(shares[label]):
        return ""
    name = display_name(label)
    return (
        f" {name} images are flagged more often than the others: a flagged scan is not evidence against {name}, and "
        'the app offers its probabilities behind a "show anyway" choice.'
    )
