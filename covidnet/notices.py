"""The warnings an analysis carries to a person: a code for programs, a message for people."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class WarningCode(StrEnum):
    """What a warning is about; the value is what JSON output and reports carry."""

    NOT_CHEST_XRAY = "not_chest_xray"  # the chest X-ray gate: the probabilities mean nothing for this image
    LATERAL_VIEW = "lateral_view"  # a side view: the models know frontal views only, so the probabilities mean nothing
    FIRST_FRAME = "first_frame"  # a multi-frame file: only its first frame was analysed
    HEATMAP_OUTSIDE_LUNGS = "heatmap_outside_lungs"  # the heatmap's share in the lungs is in validation's worst tail
    NOT_CROPPED = "not_cropped"  # a lung-crop model got the whole image, because no plausible lungs were found
    UNFAMILIAR_FILM = "unfamiliar_film"  # far from the training films, where answers were measured more often wrong


# The warnings that make an analysis's probabilities meaningless (the gate's verdicts).
GATE_CODES = frozenset({WarningCode.NOT_CHEST_XRAY, WarningCode.LATERAL_VIEW})


@dataclass(frozen=True)
class ScanWarning:
    """One warning about a scan or its analysis."""

    code: WarningCode
    message: str
    details: dict[str, Any] = field(default_factory=dict)  # measured values behind the warning, for programs

    def to_dict(self) -> dict[str, Any]:
        """``{"code", "message"}``, plus ``"details"`` when there are any (the CLI's and reports' form)."""
        record: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.details:
            record["details"] = dict(self.details)
        return record
