"""De-duplication and patient-level splits.

Images are grouped when they share a patient or are near-duplicates (64-bit perceptual hashes at
most ``NEAR_DUPLICATE_BITS`` apart); a group never straddles two splits. Whole sources can be held
out as an external test set. Groups are split by class and source with a fixed seed.
"""

from __future__ import annotations

import csv
import warnings
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import imagehash
import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from covidnet.data import Record
from covidnet.imaging import read_scan

NEAR_DUPLICATE_BITS = 4  # the shared set's own de-duplication used pHash ≤ 4 (with a correlation check)
SPLITS = ("train", "val", "test", "external", "excluded")


def perceptual_hash(path: Path) -> int:
    """The 64-bit DCT perceptual hash of a scan's display image."""
    bits = imagehash.phash(read_scan(path).image).hash.flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming_distances(hash_: int, hashes: np.ndarray) -> np.ndarray:
    """Bit differences between one 64-bit hash and an array of them."""
    return np.bitwise_count(hashes ^ np.uint64(hash_))


def groups(records: list[Record], hashes: list[int], *, max_bits: int = NEAR_DUPLICATE_BITS) -> list[int]:
    """A group id per record: union of same-patient and near-duplicate images."""
    parent = list(range(len(records)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        parent[find(i)] = find(j)

    first_of_patient: dict[str, int] = {}
    for i, record in enumerate(records):
        union(i, first_of_patient.setdefault(record.patient, i))
    array = np.array(hashes, dtype=np.uint64)
    for i, hash_ in enumerate(array[:-1]):
        for j in np.nonzero(hamming_distances(int(hash_), array[i + 1 :]) <= max_bits)[0]:
            union(i, i + 1 + int(j))
    return [find(i) for i in range(len(records))]


def assign_splits(
    records: list[Record],
    hashes: list[int],
    *,
    external_sources: Iterable[str] = (),
    seed: int = 0,
    folds: int = 20,
    val_folds: int = 3,
    test_folds: int = 3,
) -> list[str]:
    """A split name per record: ``external`` for held-out sources, else train/val/test by group.

    No patient or near-duplicate of an external image is trained on: other images in a group that
    touches an external source are ``excluded`` (neither trained on nor counted as external). The
    rest is cut into ``folds`` stratified by class and source; ``val_folds`` and ``test_folds`` of
    them (15% each by default) become val and test.
    """
    external_sources = set(external_sources)
    group_of = groups(records, hashes)
    external_groups = {g for g, r in zip(group_of, records, strict=True) if r.source in external_sources}
    inside = [i for i, g in enumerate(group_of) if g not in external_groups]
    strata = [f"{records[i].label}|{records[i].source}" for i in inside]
    rare = {s for s, n in Counter(strata).items() if n < folds}
    strata = [records[i].label if s in rare else s for i, s in zip(inside, strata, strict=True)]
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    split = [
        ("external" if r.source in external_sources else "excluded") if g in external_groups else ""
        for g, r in zip(group_of, records, strict=True)
    ]
    with warnings.catch_warnings():  # strata rarer than the fold count were merged into their class above
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        folded = list(splitter.split(inside, strata, groups=[group_of[i] for i in inside]))
    for fold, (_, held) in enumerate(folded):
        name = "test" if fold < test_folds else "val" if fold < test_folds + val_folds else "train"
        for k in held:
            split[inside[k]] = name
    return split


def write_split_file(path: Path, records: list[Record], hashes: list[int], split: list[str]) -> None:
    """Save ``sha256,phash,split`` rows (the committed record of the split)."""
    with Path(path).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sha256", "phash", "split"])
        for record, hash_, name in sorted(zip(records, hashes, split, strict=True), key=lambda t: t[0].sha256):
            writer.writerow([record.sha256, f"{hash_:016x}", name])


def read_split_file(path: Path) -> dict[str, tuple[int, str]]:
    """sha256 → (perceptual hash, split)."""
    with Path(path).open(newline="") as f:
        return {row["sha256"]: (int(row["phash"], 16), row["split"]) for row in csv.DictReader(f)}
