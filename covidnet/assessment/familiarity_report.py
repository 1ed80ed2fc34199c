"""The familiarity report (``covidnet familiarity-report``): each backbone's unfamiliar-film signal measured on films
of a source it never trained on against internal test films, and whether the app shows its note."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from covidnet.assessment.report_schema import SCHEMA_VERSION, checked


@dataclass(frozen=True)
class FamiliarityResult:
    """One backbone's signal: AUROCs as ``{"value", "low", "high"}`` (bootstrap interval), error rates as shares."""

    weights_sha256: str
    familiarity_sha256: str
    threshold: float  # the distance above which a film is called unfamiliar
    quantile: float  # the share of validation films at or below it
    n_internal: int
    n_unseen: int
    unseen_vs_internal_auroc: dict  # the distance telling unseen-source films from internal test films
    wrong_auroc_unseen: dict  # the distance telling wrong answers from right ones, on the unseen-source films
    wrong_auroc_internal: dict  # … on the internal test films
    wrong_auroc_unseen_top_probability: dict  # the top class probability (lower = wronger) doing the same, unseen
    error_unseen: float  # the share of wrong answers on the unseen-source films
    n_above_unseen: int  # unseen-source films above the threshold
    error_above_unseen: float | None  # the share of wrong answers among them (None: no film)
    error_below_unseen: float | None  # … among the unseen-source films at or below it
    share_above_internal: float  # the share of internal test films above the threshold
    error_above_internal: float | None
    error_below_internal: float | None
    shown: bool  # whether the rule found that the signal carries information, so the app shows the note

    def summary(self) -> str:
        """One line for the terminal."""
        auroc = self.wrong_auroc_unseen["value"]
        above, below = self.error_above_unseen, self.error_below_unseen
        return (
            f"unseen vs internal AUROC {self.unseen_vs_internal_auroc['value']:.3f}; wrong-answer AUROC on unseen "
            f"{'n/a' if auroc is None else f'{auroc:.3f}'}; error above/below threshold "
            f"{'n/a' if above is None else f'{above:.1%}'} ({self.n_above_unseen} films) / "
            f"{'n/a' if below is None else f'{below:.1%}'}; note {'shown' if self.shown else 'not shown'}"
        )


@dataclass(frozen=True)
class RoundFamiliarity:
    """One round's signal on the source it never trained on, and its answers at a threshold."""

    left_out: str  # the source(s) the round was trained without
    folder: str  # the round's folder
    result: FamiliarityResult
    answered_at: float | None  # the top probability from which an answer counts as given (None: every answer)
    answered_wrong: int  # wrong answers given
    answered_wrong_flagged: int  # … of them above the signal's threshold
    answered_right: int
    answered_right_flagged: int

    def summary(self) -> str:
        """One line for the terminal."""
        auroc, top = self.result.wrong_auroc_unseen["value"], self.result.wrong_auroc_unseen_top_probability["value"]
        at = "" if self.answered_at is None else f" at {self.answered_at:.2f}"
        return (
            f"wrong-answer AUROC of the distance {'n/a' if auroc is None else f'{auroc:.3f}'} (of the top probability "
            f"{'n/a' if top is None else f'{top:.3f}'}); {self.answered_wrong_flagged} of the {self.answered_wrong} "
            f"wrong answers given{at} flagged unfamiliar"
        )

    @classmethod
    def from_dict(cls, record: Any, where: str) -> RoundFamiliarity:
        record = dict(checked(cls, record, where))
        return cls(**{**record, "result": FamiliarityResult(**checked(FamiliarityResult, record["result"], where))})


@dataclass(frozen=True)
class FamiliarityReport:
    """``covidnet familiarity-report``'s report (``weights/reports/familiarity.json``)."""

    internal: str  # the internal films, in words
    unseen: str  # the films of a source never trained on, in words
    backbones: dict[str, FamiliarityResult]
    rule: str  # when the note is shown, in words
    command: str = ""
    rounds: dict[str, list[RoundFamiliarity]] = field(default_factory=dict)  # per backbone, its recipe's rounds
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, record: Any) -> FamiliarityReport:
        record = dict(checked(cls, record, "familiarity report"))
        record["backbones"] = {
            name: FamiliarityResult(**checked(FamiliarityResult, b, f"backbones.{name}"))
            for name, b in record["backbones"].items()
        }
        record["rounds"] = {
            name: [RoundFamiliarity.from_dict(r, f"rounds.{name}") for r in rounds]
            for name, rounds in record.get("rounds", {}).items()
        }
        return cls(**record)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        return {"schema_version": record.pop("schema_version"), **record}
