"""The leave-one-source-out report (``covidnet leave-one-out``): one backbone trained once per source without it,
measured on that source."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from covidnet.assessment.metric_records import SourceMetrics
from covidnet.assessment.report_schema import SCHEMA_VERSION, checked


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
        record = dict(checked(cls, record, "leave-one-out report"))
        rounds = {}
        for name, entry in record["sources"].items():
            entry = dict(checked(HeldOutSource, entry, f"sources.{name}"))
            entry["left_out"] = SourceMetrics(**checked(SourceMetrics, entry["left_out"], f"sources.{name}.left_out"))
            rounds[name] = HeldOutSource(**entry)
        return cls(**{**record, "sources": rounds})

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        for entry in record["sources"].values():
            if entry["train_images"] is None:  # not recorded: left out, as the report was written
                del entry["train_images"]
        return {"schema_version": record.pop("schema_version"), **record}
