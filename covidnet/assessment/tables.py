"""Markdown tables of the results, the data and the models, built from the evaluation and leave-one-out reports,
the checkpoints' metadata and the data: shared by the Model card page and by ``docs/model_card.md``'s generator
(the shortcut and gate tables are in ``covidnet.assessment.check_tables``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from covidnet.assessment.archives import archive_name
from covidnet.assessment.evaluation_report import EvaluationReport
from covidnet.assessment.leave_one_out_report import LeaveOneOutReport
from covidnet.assessment.metric_records import Interval, Metrics, SourceMetrics
from covidnet.assessment.metrics import COVID_SPECIFICITY
from covidnet.classes import CLASSES, TASK, display_name
from covidnet.data.records import read_metadata
from covidnet.data.splits import SPLITS, read_split_file
from covidnet.models.metadata import CheckpointMetadata, TrainingRecord

# The reports the tables show (``report_schema.REPORT_NAMES``; the validation report only chooses a threshold).
INTEREST, OTHER = display_name(TASK.of_interest), display_name(TASK.other_disease).lower()
CLASS_HEADERS = " | ".join(display_name(c) for c in CLASSES)
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
        f"| data | model | n | macro AUC | accuracy | {INTEREST} sensitivity | {INTEREST} specificity "
        f"| {INTEREST} sens. at {COVID_SPECIFICITY:.0%} spec. | {INTEREST} vs {OTHER} AUC "
        f"| {within_archive_header(archives)} | ECE |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, report in shown(reports).items():
        for model, m in report.models().items():
            covid = m.per_class[TASK.of_interest]
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


def data_tables(metadata_csv: Path, split_file: Path) -> tuple[str, str]:
    """Provenance (source, dataset, licence, counts) and split counts, in Markdown."""
    records = read_metadata(metadata_csv)
    assigned = read_split_file(split_file)
    provenance = Counter((r.source, r.dataset, r.license or "not stated", r.label) for r in records)
    rows = sorted({(s, d, lic) for s, d, lic, _ in provenance})
    source_lines = [
        f"| source repository | original dataset | licence as stated | {CLASS_HEADERS} |",
        "|---|---|---|---|---|---|",
    ]
    for s, d, lic in rows:
        counts = " | ".join(str(provenance[(s, d, lic, c)]) for c in CLASSES)
        source_lines.append(f"| {s} | {d} | {lic} | {counts} |")
    splits = Counter((assigned[r.sha256].split, r.label) for r in records)
    split_lines = [f"| split | {CLASS_HEADERS} | total |", "|---|---|---|---|---|"]
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
        epochs, best, seconds = (0, None, 0.0) if meta.training is None else _schedule_of(meta.training)
        lines.append(
            f"| {meta.backbone} | {meta.init} | {meta.input_size}px | {meta.parameters / 1e6:.1f} M | "
            f"{meta.size_bytes / 2**20:.1f} MB {meta.dtype} | {epochs} ({best}) | "
            f"{seconds / 60:.0f} min | {meta.temperature:.2f} |"
        )
    total = sum(meta.training.seconds for meta in metas if meta.training is not None) / 60
    lines.append(f"| **all** | | | | | | **{total:.0f} min** | |")
    return "\n".join(lines)


def _ci(metric: Interval) -> str:
    if metric.value is None:
        return "n/a"
    return f"{metric.value:.3f} ({metric.low:.3f}–{metric.high:.3f})"


def _schedule_of(training: TrainingRecord) -> tuple[int, int, float]:
    """Epochs run, the best epoch and the seconds a run took."""
    return len(training.history), training.best_epoch, training.seconds
