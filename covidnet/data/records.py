"""Labelled scan lists: reading a metadata CSV into ``Record``s.

Any CSV with ``path`` and ``label`` columns works (paths relative to ``root``, default the CSV's
folder). The shared set's extra columns (source, patient_id, sha256, …) are used when present; an
image without a patient id is its own patient.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from covidnet.classes import CLASSES
from covidnet.errors import CovidNetError


@dataclass(frozen=True)
class Record:
    """One labelled scan."""

    path: Path
    label: str
    source: str = "unknown"
    patient_id: str = ""
    sha256: str = ""
    dataset: str = ""
    license: str = ""

    @property
    def origin(self) -> str:
        """The data source: the original data set and the repository it was copied from."""
        return f"{self.dataset or 'unknown'} ({self.source})"

    @property
    def patient(self) -> str:
        """The patient id, or the image itself when no id is known."""
        return self.patient_id or f"image:{self.sha256 or self.path}"


def read_metadata(csv_path: Path, *, root: Path | None = None) -> list[Record]:
    """The records of a ``path,label[,…]`` CSV; labels must be one of ``CLASSES``."""
    csv_path = Path(csv_path)
    root = Path(root) if root is not None else csv_path.parent
    with csv_path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"path", "label"} - set(reader.fieldnames or [])
        if missing:
            raise CovidNetError(f"{csv_path} needs the columns path,label; missing: {', '.join(sorted(missing))}.")
        records = []
        for line, row in enumerate(reader, start=2):
            label = row["label"].strip().lower()
            if label not in CLASSES:
                raise CovidNetError(f"{csv_path}:{line}: label {row['label']!r} is not one of {', '.join(CLASSES)}.")
            records.append(
                Record(
                    path=root / row["path"],
                    label=label,
                    source=row.get("source") or "unknown",
                    patient_id=row.get("patient_id") or "",
                    sha256=row.get("sha256") or "",
                    dataset=row.get("dataset") or "",
                    license=row.get("license") or "",
                )
            )
    return records
