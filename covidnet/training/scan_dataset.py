"""The PyTorch dataset over labelled scans (``covidnet.data.records.Record``) that training iterates."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from covidnet.classes import CLASSES
from covidnet.data.records import Record
from covidnet.io.preprocessing import Box
from covidnet.io.reading import read_scan


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
