"""The metrics records of a report: one model's metrics on one data set (``Metrics``, ``metrics.summarise``'s
output, with its intervals and per-class parts) and the quick per-source view (``SourceMetrics``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from covidnet.assessment.report_schema import checked


@dataclass(frozen=True)
class Interval:
    """A metric with its bootstrap interval (``metrics.CONFIDENCE``); ``None`` where it cannot be measured."""

    value: float | None
    low: float | None
    high: float | None

    @classmethod
    def from_dict(cls, record: Any, where: str = "interval") -> Interval:
        return cls(**checked(cls, record, where))


@dataclass(frozen=True)
class ClassMetrics:
    """One class against the rest."""

    auc: Interval
    sensitivity: Interval
    specificity: Interval
    ppv: Interval

    @classmethod
    def from_dict(cls, record: Any, where: str) -> ClassMetrics:
        return cls(**{k: Interval.from_dict(v, f"{where}.{k}") for k, v in checked(cls, record, where).items()})


@dataclass(frozen=True)
class ArchiveAUC:
    """COVID-19 vs pneumonia AUC on the films of one archive only (``metrics.covid_vs_pneumonia_auc_by_group``)."""

    n_covid: int
    n_pneumonia: int
    auc: Interval

    @classmethod
    def from_dict(cls, record: Any, where: str) -> ArchiveAUC:
        record = checked(cls, record, where)
        return cls(**{**record, "auc": Interval.from_dict(record["auc"], f"{where}.auc")})


@dataclass(frozen=True)
class Metrics:
    """One model's (or the ensemble's) metrics on one data set: ``metrics.summarise``'s output."""

    n: int
    class_counts: dict[str, int]
    accuracy: Interval
    balanced_accuracy: float
    macro_auc: Interval
    per_class: dict[str, ClassMetrics]
    covid_sensitivity_at_95_specificity: Interval  # at ``metrics.COVID_SPECIFICITY``
    confusion_matrix: list[list[int]]  # rows: true class, columns: predicted class, both in ``CLASSES`` order
    roc: dict[str, dict[str, list[float]]]  # class → {"fpr": [...], "tpr": [...]}, empty lists if not measurable
    ece: float  # expected calibration error of the calibrated probabilities
    reliability: list[dict[str, Any]]  # calibration bins: low, high, count, confidence, accuracy
    selective: list[dict[str, Any]]  # per top-probability threshold: threshold, coverage, accuracy
    covid_vs_pneumonia_auc: Interval | None = None  # None in reports written before it was measured
    # Archive → the same AUC within that archive's films (``archives``); None without an archive file.
    covid_vs_pneumonia_auc_by_archive: dict[str, ArchiveAUC] | None = None

    @classmethod
    def from_dict(cls, record: Any, where: str) -> Metrics:
        record = dict(checked(cls, record, where))
        for name in ("accuracy", "macro_auc", "covid_sensitivity_at_95_specificity", "covid_vs_pneumonia_auc"):
            if name in record:
                record[name] = Interval.from_dict(record[name], f"{where}.{name}")
        record["per_class"] = {
            c: ClassMetrics.from_dict(m, f"{where}.per_class.{c}") for c, m in record["per_class"].items()
        }
        if (by_archive := record.get("covid_vs_pneumonia_auc_by_archive")) is not None:
            record["covid_vs_pneumonia_auc_by_archive"] = {
                a: ArchiveAUC.from_dict(m, f"{where}.covid_vs_pneumonia_auc_by_archive.{a}")
                for a, m in by_archive.items()
            }
        return cls(**record)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        for name in ("covid_vs_pneumonia_auc", "covid_vs_pneumonia_auc_by_archive"):
            if record[name] is None:  # a report written before it was measured stays as it was
                del record[name]
        return record


METRIC_KEYS = {f.name for f in fields(Metrics)}


@dataclass(frozen=True)
class SourceMetrics:
    """One backbone on the scans of one data source (``Record.origin``): no intervals, a quick per-source view."""

    n: int
    class_counts: dict[str, int]
    accuracy: float
    macro_auc: float | None  # over the classes present; None with a single class
    sensitivity: dict[str, float | None]  # per class present; None for a class the source does not hold
