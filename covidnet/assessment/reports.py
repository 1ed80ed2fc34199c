"""The evaluation report (``covidnet evaluate``) and the gate report (``covidnet gate-report``): what they hold,
and the one place where they are written (``write_report``, ``write_gate_report``) and read (``read_report``,
``read_gate_report``).

Both are JSON files that carry a ``schema_version`` (``SCHEMA_VERSION``). A file without one predates the key
and has the version 1 shape, so it is read as version 1; any other version is refused with a ``ReportError``,
as is a missing key (keys no field here names are ignored).

One quirk of the JSON shape is kept for the files already written: a backbone's ``"ece"`` is an object
``{"before_temperature", "after_temperature"}`` while the ensemble's (an average of calibrated probabilities) is a
number. In memory both are ``Metrics.ece``, the ECE of the calibrated probabilities, and a backbone's ECE before
temperature scaling is ``BackboneResult.ece_before_temperature``: no reader needs to know about the quirk.

Longer than our usual ~250 lines on purpose: it is the whole schema of both reports, one small dataclass per
JSON object, kept in one file so that the shape of a report can be read top to bottom in one place.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from covidnet.errors import CovidNetError

SCHEMA_VERSION = 2  # 2: the occlusion checks use lung masks; heatmap-in-lungs per class
VERSIONLESS = 1  # the shape of the files written before reports carried a schema version
# Each evaluated split of the split file → the name of its report (``weights/reports/<name>.json``) and of its
# entry in a checkpoint's ``metrics``.
REPORT_NAMES = {"test": "internal_test", "external": "external", "val": "validation"}
VALIDATION = REPORT_NAMES["val"]  # the report the "uncertain" threshold is chosen on
GATE_REPORT = "gate"  # weights/reports/gate.json
LEAVE_ONE_OUT_REPORT = "leave_one_source_out"  # weights/reports/leave_one_source_out.json


class ReportError(CovidNetError):
    """A report file that is missing, damaged, of another schema version or not shaped like a report."""


def _checked(cls: type, record: Any, where: str) -> dict[str, Any]:
    """The entries of ``record`` (a JSON object) that are fields of ``cls``, after checking that every field
    without a default is there."""
    if not isinstance(record, dict):
        raise ReportError(f"{where}: expected an object, found {type(record).__name__}.")
    known = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    if missing := sorted(required - set(record)):
        raise ReportError(f"{where}: missing keys {', '.join(missing)}.")
    return {k: v for k, v in record.items() if k in known}


@dataclass(frozen=True)
class Interval:
    """A metric with its bootstrap interval (``metrics.CONFIDENCE``); ``None`` where it cannot be measured."""

    value: float | None
    low: float | None
    high: float | None

    @classmethod
    def from_dict(cls, record: Any, where: str = "interval") -> Interval:
        return cls(**_checked(cls, record, where))


@dataclass(frozen=True)
class ClassMetrics:
    """One class against the rest."""

    auc: Interval
    sensitivity: Interval
    specificity: Interval
    ppv: Interval

    @classmethod
    def from_dict(cls, record: Any, where: str) -> ClassMetrics:
        return cls(**{k: Interval.from_dict(v, f"{where}.{k}") for k, v in _checked(cls, record, where).items()})


@dataclass(frozen=True)
class ArchiveAUC:
    """COVID-19 vs pneumonia AUC on the films of one archive only (``metrics.covid_vs_pneumonia_auc_by_group``)."""

    n_covid: int
    n_pneumonia: int
    auc: Interval

    @classmethod
    def from_dict(cls, record: Any, where: str) -> ArchiveAUC:
        record = _checked(cls, record, where)
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
        record = dict(_checked(cls, record, where))
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


_METRIC_KEYS = {f.name for f in fields(Metrics)}


@dataclass(frozen=True)
class GroupFlags:
    """How many images of one group (a data source or a true class) the chest X-ray gate flagged."""

    n: int
    flagged: int
    flagged_share: float


@dataclass(frozen=True)
class GateFlags:
    """The chest X-ray gate on the evaluated images, which are all chest X-rays (so every flag is a false alarm)."""

    fitted: bool
    flagged: int
    flagged_share: float
    by_source: dict[str, GroupFlags]
    by_class: dict[str, GroupFlags]

    @classmethod
    def from_dict(cls, record: Any, where: str) -> GateFlags:
        record = dict(_checked(cls, record, where))
        for by in ("by_source", "by_class"):
            record[by] = {k: GroupFlags(**_checked(GroupFlags, v, f"{where}.{by}.{k}")) for k, v in record[by].items()}
        return cls(**record)


@dataclass(frozen=True)
class SourceProbe:
    """Cross-validated accuracy of a linear probe telling the data source from the penultimate features."""

    sources: list[str]
    accuracy: float | None  # None with a single source
    majority_baseline: float


@dataclass(frozen=True)
class SaliencySanity:
    """Rank correlation of Grad-CAM between the trained model and a copy with its explained layers re-initialised."""

    n: int
    median_spearman: float
    max_spearman: float


@dataclass(frozen=True)
class HeatmapInLungs:
    """How much of the Grad-CAM heatmaps' mass lies inside the lungs, over one group of scans."""

    n: int  # scans with plausible lungs and a heatmap
    median: float | None  # None when n is 0
    share_above_half: float | None  # the share of those heatmaps with more than half of their mass in the lungs
    lung_area_median: float | None  # the median share of the image the lungs cover (an even heatmap's score)


@dataclass(frozen=True)
class ShortcutChecks:
    """``covidnet.assessment.shortcuts``' checks: accuracy with parts of the image hidden, and the probes above.

    The two lung occlusions are measured on the ``lung_masked_n`` scans with plausible lungs (and
    ``accuracy_on_those`` is the unmasked accuracy on the same scans); ``heatmap_in_lungs`` is keyed by "all"
    and by true class.
    """

    accuracy: float
    accuracy_lungs_masked: float
    accuracy_outside_lungs_masked: float
    accuracy_on_those: float
    lung_masked_n: int
    accuracy_top_and_corners_masked: float
    majority_class_accuracy: float
    source_probe: SourceProbe
    saliency_sanity: SaliencySanity
    heatmap_in_lungs: dict[str, HeatmapInLungs]

    @classmethod
    def from_dict(cls, record: Any, where: str) -> ShortcutChecks:
        record = dict(_checked(cls, record, where))
        record["source_probe"] = SourceProbe(**_checked(SourceProbe, record["source_probe"], f"{where}.source_probe"))
        record["saliency_sanity"] = SaliencySanity(
            **_checked(SaliencySanity, record["saliency_sanity"], f"{where}.saliency_sanity")
        )
        record["heatmap_in_lungs"] = {
            k: HeatmapInLungs(**_checked(HeatmapInLungs, v, f"{where}.heatmap_in_lungs.{k}"))
            for k, v in record["heatmap_in_lungs"].items()
        }
        return cls(**record)


@dataclass(frozen=True)
class SourceMetrics:
    """One backbone on the scans of one data source (``Record.origin``): no intervals, a quick per-source view."""

    n: int
    class_counts: dict[str, int]
    accuracy: float
    macro_auc: float | None  # over the classes present; None with a single class
    sensitivity: dict[str, float | None]  # per class present; None for a class the source does not hold


@dataclass(frozen=True)
class BackboneResult:
    """One backbone on the report's data: its metrics on calibrated probabilities, and what else was measured."""

    metrics: Metrics
    ece_before_temperature: float
    gate: GateFlags
    reliability_before_temperature: list[dict[str, Any]] = field(default_factory=list)
    weights_sha256: str = ""  # of the .pt measured
    temperature: float | None = None
    shortcuts: ShortcutChecks | None = None  # None when evaluated with --no-shortcuts
    by_source: dict[str, SourceMetrics] | None = None  # None in reports written before it was measured

    @classmethod
    def from_dict(cls, record: Any, where: str) -> BackboneResult:
        if not isinstance(record, dict):
            raise ReportError(f"{where}: expected an object, found {type(record).__name__}.")
        ece = record.get("ece")
        if not isinstance(ece, dict) or set(ece) != {"before_temperature", "after_temperature"}:
            raise ReportError(f"{where}.ece: expected before_temperature and after_temperature.")
        summary = {k: v for k, v in record.items() if k in _METRIC_KEYS} | {"ece": ece["after_temperature"]}
        if "gate" not in record:
            raise ReportError(f"{where}: missing keys gate.")
        shortcuts = record.get("shortcuts")
        by_source = record.get("by_source")
        return cls(
            metrics=Metrics.from_dict(summary, where),
            ece_before_temperature=ece["before_temperature"],
            gate=GateFlags.from_dict(record["gate"], f"{where}.gate"),
            reliability_before_temperature=record.get("reliability_before_temperature", []),
            weights_sha256=record.get("weights_sha256", ""),
            temperature=record.get("temperature"),
            shortcuts=None if shortcuts is None else ShortcutChecks.from_dict(shortcuts, f"{where}.shortcuts"),
            by_source=None if by_source is None else _source_metrics(by_source, f"{where}.by_source"),
        )

    def to_dict(self) -> dict[str, Any]:
        record = self.metrics.to_dict()
        record["ece"] = {"before_temperature": self.ece_before_temperature, "after_temperature": self.metrics.ece}
        record["reliability_before_temperature"] = self.reliability_before_temperature
        record["weights_sha256"] = self.weights_sha256
        record["temperature"] = self.temperature
        if self.shortcuts is not None:
            record["shortcuts"] = asdict(self.shortcuts)
        record["gate"] = asdict(self.gate)
        if self.by_source is not None:
            record["by_source"] = {k: asdict(v) for k, v in self.by_source.items()}
        return record


def _source_metrics(record: dict[str, Any], where: str) -> dict[str, SourceMetrics]:
    return {k: SourceMetrics(**_checked(SourceMetrics, v, f"{where}.{k}")) for k, v in record.items()}


@dataclass(frozen=True)
class EnsembleResult:
    """The ensemble: the mean of its members' calibrated probabilities."""

    metrics: Metrics
    members: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, record: Any, where: str) -> EnsembleResult:
        if not isinstance(record, dict):
            raise ReportError(f"{where}: expected an object, found {type(record).__name__}.")
        summary = {k: v for k, v in record.items() if k != "members"}
        return cls(Metrics.from_dict(summary, where), list(record.get("members", [])))

    def to_dict(self) -> dict[str, Any]:
        return {**self.metrics.to_dict(), "members": self.members}


@dataclass(frozen=True)
class Unreadable:
    """Images of the evaluated list that could not be read (counted, not fatal)."""

    count: int = 0
    examples: list[str] = field(default_factory=list)  # the first few error messages


@dataclass(frozen=True)
class EvaluationReport:
    """``covidnet evaluate``'s report: every backbone and their ensemble on one labelled data set."""

    data: str  # what was evaluated, e.g. "metadata.csv, split 'test' of weights/split.csv"
    n: int  # images evaluated (readable ones)
    backbones: dict[str, BackboneResult]
    ensemble: EnsembleResult
    unreadable: Unreadable = field(default_factory=Unreadable)
    sources: list[str] = field(default_factory=list)  # the data sources of the evaluated images
    command: str = ""  # the command line that wrote the report
    schema_version: int = SCHEMA_VERSION

    def models(self) -> dict[str, Metrics]:
        """Every backbone's metrics, then the ensemble's (as ``"ensemble"``)."""
        return {**{name: b.metrics for name, b in self.backbones.items()}, "ensemble": self.ensemble.metrics}

    @classmethod
    def from_dict(cls, record: Any) -> EvaluationReport:
        record = dict(_checked(cls, record, "report"))
        record["backbones"] = {
            name: BackboneResult.from_dict(b, f"backbones.{name}") for name, b in record["backbones"].items()
        }
        record["ensemble"] = EnsembleResult.from_dict(record["ensemble"], "ensemble")
        if "unreadable" in record:
            record["unreadable"] = Unreadable(**_checked(Unreadable, record["unreadable"], "unreadable"))
        return cls(**record)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "data": self.data,
            "n": self.n,
            "unreadable": asdict(self.unreadable),
            "sources": self.sources,
            "backbones": {name: b.to_dict() for name, b in self.backbones.items()},
            "ensemble": self.ensemble.to_dict(),
            "command": self.command,
        }


@dataclass(frozen=True)
class GateCorpusResult:
    """One backbone's gate on the corpus of images that are not chest X-rays (so every flag is right)."""

    gate_fitted: bool
    gate_of: str  # the backbone whose gate it uses (itself, or the one it shares)
    flagged_share: float
    flagged_share_by_kind: dict[str, float]


@dataclass(frozen=True)
class GateReport:
    """``covidnet gate-report``'s report (``weights/reports/gate.json``)."""

    n: int  # images in the corpus
    kinds: dict[str, int]  # kind of image (the corpus' subfolder) → images
    backbones: dict[str, GateCorpusResult]
    command: str = ""
    schema_version: int = SCHEMA_VERSION
    # The lung check alone: {"frontal_data": CSV, "frontal": counts, "corpus": counts}, counts being
    # {"n", "no_lung_fields", "lateral_view"}; None when measured without the lung segmenter.
    lung_check: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, record: Any) -> GateReport:
        record = dict(_checked(cls, record, "gate report"))
        record["backbones"] = {
            name: GateCorpusResult(**_checked(GateCorpusResult, b, f"backbones.{name}"))
            for name, b in record["backbones"].items()
        }
        return cls(**record)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        return {"schema_version": record.pop("schema_version"), **record}


@dataclass(frozen=True)
class HeldOutSource:
    """One leave-one-source-out round: a model trained without ``source``, measured on all of its scans."""

    trained_on: list[str]  # the training sources of that model
    validation_macro_auc: float  # on the validation split, without the left-out source
    internal_test_macro_auc: float  # on the internal test split, without the left-out source
    left_out: SourceMetrics  # on every scan of the left-out source (none was trained on or selected on)
    seconds: float  # training time
    train_images: dict[str, int] | None = None  # per class; None in reports written before it was recorded


@dataclass(frozen=True)
class LeaveOneOutReport:
    """``covidnet leave-one-out``: one backbone, trained once per source without it (a short schedule)."""

    backbone: str
    settings: dict[str, Any]  # the training settings every round shares
    sources: dict[str, HeldOutSource]
    command: str = ""
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, record: Any) -> LeaveOneOutReport:
        record = dict(_checked(cls, record, "leave-one-out report"))
        rounds = {}
        for name, entry in record["sources"].items():
            entry = dict(_checked(HeldOutSource, entry, f"sources.{name}"))
            entry["left_out"] = SourceMetrics(**_checked(SourceMetrics, entry["left_out"], f"sources.{name}.left_out"))
            rounds[name] = HeldOutSource(**entry)
        return cls(**{**record, "sources": rounds})

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        for entry in record["sources"].values():
            if entry["train_images"] is None:  # not recorded: left out, as the report was written
                del entry["train_images"]
        return {"schema_version": record.pop("schema_version"), **record}


def write_leave_one_out_report(report: LeaveOneOutReport, path: Path) -> None:
    """Write the leave-one-source-out report to ``path`` as indented JSON."""
    _write(report.to_dict(), path)


def read_leave_one_out_report(path: Path) -> LeaveOneOutReport:
    """The leave-one-source-out report at ``path``; ``ReportError`` if it cannot be read as one."""
    return _read(path, LeaveOneOutReport.from_dict)


def find_leave_one_out_report(folder: Path) -> LeaveOneOutReport | None:
    """The leave-one-source-out report in ``folder`` (``LEAVE_ONE_OUT_REPORT``), or None if there is none."""
    path = Path(folder) / f"{LEAVE_ONE_OUT_REPORT}.json"
    return read_leave_one_out_report(path) if path.exists() else None


def write_report(report: EvaluationReport, path: Path) -> None:
    """Write ``report`` to ``path`` as indented JSON (creating the folder)."""
    _write(report.to_dict(), path)


def read_report(path: Path) -> EvaluationReport:
    """The evaluation report at ``path``; ``ReportError`` if it cannot be read as one."""
    return _read(path, EvaluationReport.from_dict)


def read_reports(folder: Path) -> dict[str, EvaluationReport]:
    """The evaluation reports of ``REPORT_NAMES`` that exist in ``folder``, by name, in that order."""
    paths = {name: Path(folder) / f"{name}.json" for name in REPORT_NAMES.values()}
    return {name: read_report(path) for name, path in paths.items() if path.exists()}


def write_gate_report(report: GateReport, path: Path) -> None:
    """Write the gate report to ``path`` as indented JSON (creating the folder)."""
    _write(report.to_dict(), path)


def read_gate_report(path: Path) -> GateReport:
    """The gate report at ``path``; ``ReportError`` if it cannot be read as one."""
    return _read(path, GateReport.from_dict)


def find_gate_report(folder: Path) -> GateReport | None:
    """The gate report in ``folder`` (``GATE_REPORT``), or None if there is none."""
    path = Path(folder) / f"{GATE_REPORT}.json"
    return read_gate_report(path) if path.exists() else None


def _write(record: dict[str, Any], path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")


def _read(path: Path, build):
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ReportError(f"Cannot read report {str(path)!r}: {e}.") from None
    if not isinstance(record, dict):
        raise ReportError(f"{str(path)!r} is not a report (expected a JSON object).")
    version = record.get("schema_version", VERSIONLESS)
    if version != SCHEMA_VERSION:
        raise ReportError(
            f"{str(path)!r} has report schema version {version}; this CovidNet reads version {SCHEMA_VERSION}."
        )
    try:
        return build({**record, "schema_version": version})
    except ReportError as e:
        raise ReportError(f"{str(path)!r} is not a valid report: {e}") from None
    except (TypeError, AttributeError, KeyError) as e:
        raise ReportError(f"{str(path)!r} is not a valid report: {e!r}.") from None
