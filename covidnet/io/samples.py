"""Sample scans bundled for the app: redistributable images from the test and external splits."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

FOLDER = Path(__file__).resolve().parents[1] / "sample_scans"


@dataclass(frozen=True)
class Sample:
    """One bundled scan with its label and attribution."""

    file: str
    label: str
    dataset: str
    source: str
    license: str
    attribution: str
    split: str
    notes: str

    @property
    def path(self) -> Path:
        return FOLDER / self.file


def samples() -> list[Sample]:
    """Every bundled sample, in display order."""
    return [Sample(**record) for record in json.loads((FOLDER / "samples.json").read_text())]
