"""De-duplication and patient-level splits.

Images are grouped when they share a patient or are near-duplicates (64-bit perceptual hashes at
most ``NEAR_DUPLICATE_BITS`` apart); a group never straddles two splits. Whole sources can be held
out as an external test set. Groups are split by class and source with a fixed seed. When the data
grows, ``extend_splits`` keeps every earlier assignment and places only the new images, so what a
shipped model trained on stays fixed; the split file records the round that added each image.
"""

from __future__ import annotations

import csv
import warnings
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import imagehash
import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from covidnet.data.records import Record
from covidnet.errors import CovidNetError
from covidnet.grouping import DisjointSets
from covidnet.io.reading import read_scan

NEAR_DUPLICATE_BITS = 4  # the shared set's own de-duplication used pHash ≤ 4 (with a correlation check)
SPLITS = ("train", "val", "test", "external", "excluded")


class SplitEntry(NamedTuple):
    """One image's line in the split file."""

    phash: int
    split: str
    round: int


def perceptual_hash(path: Path) -> int:
    """The 64-bit DCT perceptual hash of a scan's display image."""
    bits = imagehash.phash(read_scan(path).image).hash.flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming_distances(hash_: int, hashes: np.ndarray) -> np.ndarray:
    """Bit differences between one 64-bit hash and an array of them."""
    return np.bitwise_count(hashes ^ np.uint64(hash_))


def groups(records: list[Record], hashes: list[int], *, max_bits: int = NEAR_DUPLICATE_BITS) -> list[int]:
    """A group id per record: union of same-patient and near-duplicate images."""
    sets = DisjointSets(len(records))
    first_of_patient: dict[str, int] = {}
    for i, record in enumerate(records):
        sets.union(i, first_of_patient.setdefault(record.patient, i))
    array = np.array(hashes, dtype=np.uint64)
    for i, hash_ in enumerate(array[:-1]):
        for j in np.nonzero(hamming_distances(int(hash_), array[i + 1 :]) <= max_bits)[0]:
            sets.union(i, i + 1 + int(j))
    return sets.roots()


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
    inside_groups = [group_of[i] for i in inside]
    if len(set(inside_groups)) < folds:  # too few to stratify (a small addition): a seeded draw per group
        rng = np.random.default_rng(seed)
        fold_of = {g: int(rng.integers(folds)) for g in sorted(set(inside_groups))}
        folded = [[k for k, g in enumerate(inside_groups) if fold_of[g] == fold] for fold in range(folds)]
    else:
        with warnings.catch_warnings():  # strata rarer than the fold count were merged into their class above
            warnings.filterwarnings("ignore", "The least populated class", UserWarning)
            folded = [held for _, held in splitter.split(inside, strata, groups=inside_groups)]
    for fold, held in enumerate(folded):
        name = "test" if fold < test_folds else "val" if fold < test_folds + val_folds else "train"
        for k in held:
            split[inside[k]] = name
    return split


def extend_splits(
    records: list[Record],
    hashes: list[int],
    kept: dict[str, str],
    *,
    external_sources: Iterable[str] = (),
    seed: int = 0,
) -> list[str]:
    """A split name per record, keeping ``kept`` (sha256 → split) for the images it already assigns.

    A new image that joins a group with assigned images takes that group's split; it is ``excluded``
    when the group's images already sit in two splits (it would join them) or touch an external
    source. Groups made only of new images are cut by ``assign_splits``'s rule, with the same seed.
    """
    external_sources = set(external_sources)
    group_of = groups(records, hashes)
    kept_splits: dict[int, set[str]] = {}
    for g, record in zip(group_of, records, strict=True):
        if record.sha256 in kept:
            kept_splits.setdefault(g, set()).add(kept[record.sha256])
    fresh = [i for i, (g, r) in enumerate(zip(group_of, records, strict=True)) if g not in kept_splits]
    fresh_split = assign_splits(
        [records[i] for i in fresh], [hashes[i] for i in fresh], external_sources=external_sources, seed=seed
    )
    split = dict(zip(fresh, fresh_split, strict=True))
    for i, (g, record) in enumerate(zip(group_of, records, strict=True)):
        if record.sha256 in kept:
            split[i] = kept[record.sha256]
        elif i not in split:
            split[i] = _joined_split(kept_splits[g], external=record.source in external_sources)
    return [split[i] for i in range(len(records))]


def _joined_split(group_splits: set[str], *, external: bool) -> str:
    """The split of a new image that joins a group whose other images are already assigned."""
    if external:
        return "external"
    if len(group_splits) == 1 and not group_splits & {"external", "excluded"}:
        return next(iter(group_splits))
    return "excluded"


def write_split_file(path: Path, records: list[Record], hashes: list[int], split: list[str], rounds: list[int]) -> None:
    """Save ``sha256,phash,split,round`` rows (the committed record of the split).

    ``round`` says which ``covidnet split`` run first assigned the image (1 for the first).
    """
    with Path(path).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sha256", "phash", "split", "round"])
        rows = sorted(zip(records, hashes, split, rounds, strict=True), key=lambda t: t[0].sha256)
        for record, hash_, name, round_ in rows:
            writer.writerow([record.sha256, f"{hash_:016x}", name, round_])


def read_split_file(path: Path) -> dict[str, SplitEntry]:
    """sha256 → its split file entry (perceptual hash, split, round)."""
    with Path(path).open(newline="") as f:
        return {
            row["sha256"]: SplitEntry(int(row["phash"], 16), row["split"], int(row.get("round") or 1))
            for row in csv.DictReader(f)
        }


def split_records(records: list[Record], split_file: Path) -> dict[str, list[Record]]:
    """Records grouped by the split the split file assigns to their sha256."""
    assigned = read_split_file(split_file)
    missing = [r.path.name for r in records if r.sha256 not in assigned]
    if missing:
        raise CovidNetError(f"{len(missing)} images are not in {split_file} (e.g. {missing[0]}); run `covidnet split`.")
    parts: dict[str, list[Record]] = {}
    for record in records:
        parts.setdefault(assigned[record.sha256][1], []).append(record)
    return parts
