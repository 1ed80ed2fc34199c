"""The rows batched scoring gives, and their flat form for tables.

A row is ``{"scan", **Analysis.to_dict(), "heatmap"}`` for each scan and backbone (and, with several backbones,
``{"scan", **Ensemble.to_dict(), "heatmap": None}``, named ``ensemble``), or ``{"scan", "error"}`` for a scan that
could not be read: JSON lines carry it as is. CSV and Parquet carry its flat form under ``COLUMNS``: one column per
class probability (``p_covid`` …), the lungs' summary and the warnings as JSON text; ``csv_text`` is the one CSV
form, of the CLI's ``--out FILE.csv`` and of the app's Batch download alike.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from covidnet.classes import CLASSES
from covidnet.inference.results import Analysis, Ensemble

# The flat form's columns and their types, in order (every flat row has every column; None where empty).
COLUMNS: dict[str, type] = {
    "scan": str,
    "backbone": str,
    **{f"p_{label}": float for label in CLASSES},
    "prediction": str,
    "uncertain": bool,
    "flagged": str,
    "heatmap_in_lungs": float,
    "unfamiliarity": float,
    "lungs": str,
    "warnings": str,
    "heatmap": str,
    "error": str,
}


@dataclass(frozen=True)
class Scored:
    """One scan analysed by one backbone or by their ensemble, or one scan that could not be read (``error``)."""

    scan: str  # the scan's path as given (or an upload's name)
    analysis: Analysis | Ensemble | None = None
    error: str | None = None
    heatmap: Path | None = None  # where its overlay was written, if one was asked for

    def row(self) -> dict[str, Any]:
        """The row: built from ``to_dict()``, the one serialised form of an analysis or an ensemble."""
        if self.analysis is None:
            return {"scan": self.scan, "error": self.error}
        heatmap = None if self.heatmap is None else str(self.heatmap)
        return {"scan": self.scan, **self.analysis.to_dict(), "heatmap": heatmap}


def flat(row: dict[str, Any]) -> dict[str, Any]:
    """A row as table cells under ``COLUMNS``; ``ValueError`` for a field that has no column (add one)."""
    cells: dict[str, Any] = {}
    for key, value in row.items():
        if key == "probabilities":
            cells.update({f"p_{label}": p for label, p in value.items()})
        else:
            cells[key] = json.dumps(value) if isinstance(value, (list, dict)) else value
    unknown = set(cells) - set(COLUMNS)
    if unknown:
        raise ValueError(f"no table column for {', '.join(sorted(unknown))}: add it to COLUMNS")
    return {column: cells.get(column) for column in COLUMNS}


def csv_text(rows: Iterable[dict[str, Any]], *, header: bool = True) -> str:
    """Rows in their flat form as CSV lines under ``COLUMNS`` (after a header line of them, with ``header``)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(COLUMNS))
    if header:
        writer.writeheader()
    writer.writerows(flat(row) for row in rows)
    return text.getvalue()


def heatmap_path(folder: Path, scan: str, backbone: str, cam: str) -> Path:
    """Where the overlay of ``scan`` by ``backbone`` goes: named after the whole path, so that scans with the
    same file name in different folders do not overwrite each other."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(Path(scan).with_suffix("")).strip("/")).strip("_")
    return folder / f"{stem}.{backbone}.{cam}.png"
