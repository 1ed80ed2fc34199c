"""Data sources as a training concern: which source a scan comes from, sampling that balances (source, label)
groups, and leaving whole sources out of training.

A scan's source is its original data set together with the repository it was copied from (``Record.origin``):
the same data set stored by two repositories at different resolutions looks different, and that look is what a
network can learn instead of the disease.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import torch

from covidnet.data.records import Record
from covidnet.errors import TrainingSetupError

BALANCING = ("label", "source-label")
MIN_GROUP = 50  # a (source, label) group smaller than this is weighted as if it had this many scans


def sample_weights(records: Sequence[Record], balance: str) -> torch.Tensor:
    """One sampling weight per record. ``label``: every label is drawn equally often. ``source-label``: every label
    equally often and, within a label, every source equally often (groups under ``MIN_GROUP`` scans are drawn
    less, so that a handful of images is not repeated hundreds of times)."""
    if balance not in BALANCING:
        raise TrainingSetupError(f"unknown balancing {balance!r}; choose from {', '.join(BALANCING)}")
    labels = Counter(r.label for r in records)
    if balance == "label":
        return torch.tensor([1.0 / (len(labels) * labels[r.label]) for r in records], dtype=torch.float64)
    groups = Counter((r.origin, r.label) for r in records)
    sources_per_label = Counter(label for _, label in groups)
    return torch.tensor(
        [
            1.0 / (len(labels) * sources_per_label[r.label] * max(groups[(r.origin, r.label)], MIN_GROUP))
            for r in records
        ],
        dtype=torch.float64,
    )


def matches(record: Record, names: Iterable[str]) -> bool:
    """Whether ``record`` comes from one of ``names`` (a data set, a repository, or an origin)."""
    return any(name in (record.dataset, record.source, record.origin) for name in names)


def hold_out(train: list[Record], val: list[Record], names: Sequence[str]) -> tuple[list[Record], list[Record]]:
    """(train, val) with every scan of the sources ``names`` moved from training into validation, so that model
    selection sees sources the model never trained on. Raises ``TrainingSetupError`` for a name that
    matches nothing."""
    for name in names:
        if not any(matches(r, [name]) for r in (*train, *val)):
            known = sorted({r.dataset for r in (*train, *val)} | {r.source for r in (*train, *val)})
            raise TrainingSetupError(f"no scans from source {name!r}; known: {', '.join(known)}")
    kept = [r for r in train if not matches(r, names)]
    moved = [r for r in train if matches(r, names)]
    return kept, [*val, *moved]


def without(records: list[Record], names: Sequence[str]) -> list[Record]:
    """``records`` less every scan of the sources ``names`` (left out of training and of model selection)."""
    return [r for r in records if not matches(r, names)]


def source_index(records: Sequence[Record]) -> dict[str, int]:
    """A class index per source among ``records`` (sorted by name), for the source-adversarial head."""
    return {origin: k for k, origin in enumerate(sorted({r.origin for r in records}))}


def training_films(
    parts: dict[str, list[Record]],
    *,
    exclude: Sequence[str] = (),
    holdout: Sequence[str] = (),
    limit: int | None = None,
) -> tuple[list[Record], list[Record]]:
    """The (training, validation) films of a run: the split's parts less the ``exclude``d sources, the ``holdout``
    sources moved into validation, then every ``limit``-th film of each."""
    train_records, val_records = hold_out(without(parts.get("train", []), exclude), parts.get("val", []), holdout)
    val_records = without(val_records, exclude)
    return train_records[:: limit or 1], val_records[:: limit or 1]
