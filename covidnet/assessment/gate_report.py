"""The gate report (``covidnet gate-report``): every backbone's chest X-ray gate on images that are not chest
X-rays, and the lung check alone."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from covidnet.assessment.report_schema import SCHEMA_VERSION, checked


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
        record = dict(checked(cls, record, "gate report"))
        record["backbones"] = {
            name: GateCorpusResult(**checked(GateCorpusResult, b, f"backbones.{name}"))
            for name, b in record["backbones"].items()
        }
        return cls(**record)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        return {"schema_version": record.pop("schema_version"), **record}
