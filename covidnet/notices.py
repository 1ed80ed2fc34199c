"""The warnings an analysis carries to a person: a code for programs, a message for people."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class WarningCode(StrEnum):
    """What a warning is about; the value is what JSON output and reports carry."""

    NOT_CHEST_XRAY = "not_chest_xray"  # the chest X-ray gate: the probabilities mean nothing for this image
    FIRST_FRAME = "first_frame"  # a multi-frame file: only its first frame was analysed


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
