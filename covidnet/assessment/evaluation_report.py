"""The evaluation report (``covidnet evaluate``): every backbone and the ensemble on one labelled data set, with
the gate's flags and the shortcut checks.

One quirk of the JSON shape is kept for the files already written: a backbone's ``"ece"`` is an object
``{"before_temperature", "after_temperature"}`` while the ensemble's (an average of calibrated probabilities) is a
number. In memory both are ``Metrics.ece``, the ECE of the calibrated probabilities, and a backbone's ECE before
temperature scaling is ``BackboneResult.ece_before_temperature``: no reader needs to know about the quirk.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from covidnet.assessment.films import Films
from covidnet.assessment.metric_records import METRIC_KEYS, Metrics, SourceMetrics
from covidnet.assessment.report_schema import SCHEMA_VERSION, ReportError, checked


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
        record = dict(checked(cls, record, where))
        for by in ("by_source", "by_class"):
            record[by] = {k: GroupFlags(**checked(GroupFlags, v, f"{where}.{by}.{k}")) for k, v in record[by].items()}
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
        record = dict(checked(cls, record, where))
        record["source_probe"] = SourceProbe(**checked(SourceProbe, record["source_probe"], f"{where}.source_probe"))
        record["saliency_sanity"] = SaliencySanity(
            **checked(SaliencySanity, record["saliency_sanity"], f"{where}.saliency_sanity")
        )
        record["heatmap_in_lungs"] = {
            k: HeatmapInLungs(**checked(HeatmapInLungs, v, f"{where}.heatmap_in_lungs.{k}"))
            for k, v in record["heatmap_in_lungs"].items()
        }
        return cls(**record)


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
        summary = {k: v for k, v in record.items() if k in METRIC_KEYS} | {"ece": ece["after_temperature"]}
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
    return {k: SourceMetrics(**checked(SourceMetrics, v, f"{where}.{k}")) for k, v in record.items()}


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
    films: Films | None = None  # each film and every backbone's probabilities of it (reports written before: none)
    schema_version: int = SCHEMA_VERSION

    def models(self) -> dict[str, Metrics]:
        """Every backbone's metrics, then the ensemble's (as ``"ensemble"``)."""
        return {**{name: b.metrics for name, b in self.backbones.items()}, "ensemble": self.ensemble.metrics}

    @classmethod
    def from_dict(cls, record: Any) -> EvaluationReport:
        record = dict(checked(cls, record, "report"))
        record["backbones"] = {
            name: BackboneResult.from_dict(b, f"backbones.{name}") for name, b in record["backbones"].items()
        }
        record["ensemble"] = EnsembleResult.from_dict(record["ensemble"], "ensemble")
        if "unreadable" in record:
            record["unreadable"] = Unreadable(**checked(Unreadable, record["unreadable"], "unreadable"))
        if record.get("films") is not None:
            record["films"] = Films.from_dict(record["films"], "films")
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
        } | ({} if self.films is None else {"films": self.films.to_dict()})
