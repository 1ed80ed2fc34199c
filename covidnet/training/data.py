"""Labelled scan lists: reading a metadata CSV, and a PyTorch dataset over it.

Any CSV with ``path`` and ``label`` columns works (paths relative to ``root``, default the CSV's
folder). The shared set's extra columns (source, patient_id, sha256, …) are used when present; an
image without a patient id is its own patient.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from covidnet.classes import CLASSES
from covidnet.errors import CovidNetError
from covidnet.io.preprocessing import Box
from covidnet.io.reading import read_scan


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


class ScanDataset(Dataset):
    """Records → (tensor, class index, source index), through ``read_scan`` and a transform from
    ``build_transform``; the source index comes from ``sources`` (``Record.origin`` → index; -1 without it).

    ``lung_boxes`` (one per record, None where no lungs were found) are handed to the transform, which crops
    to them when its checkpoint is trained on lung crops. Decoded display images are kept in memory after the
    first epoch (about 100 kB each).
    """

    def __init__(
        self,
        records: list[Record],
        transform: Callable,
        *,
        cache: bool = True,
        lung_boxes: list[Box | None] | None = None,
        sources: dict[str, int] | None = None,
    ) -> None:
        self.records = records
        self.sources = sources or {}
        self.transform = transform
        self.lung_boxes = lung_boxes or [None] * len(records)
        self._images: dict[int, object] = {} if cache else None

    def __len__(self) -> int:
        return len(self.records)

    def image(self, index: int):
        if self._images is None:
            return read_scan(self.records[index].path).image
        if index not in self._images:
            self._images[index] = read_scan(self.records[index].path).image
        return self._images[index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        record = self.records[index]
        tensor = self.transform(self.image(index), self.lung_boxes[index])
        return tensor, CLASSES.index(record.label), self.sources.get(record.origin, -1)
