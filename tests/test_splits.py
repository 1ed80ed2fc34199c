"""The committed split: no patient and no near-duplicate crosses splits, and the hashes are real."""

from pathlib import Path

import numpy as np
import pytest
from conftest import CXR_ROOT

from covidnet.data.locations import EXTERNAL_SOURCE
from covidnet.data.records import Record, read_metadata
from covidnet.data.splits import (
    NEAR_DUPLICATE_BITS,
    assign_splits,
    extend_splits,
    groups,
    hamming_distances,
    perceptual_hash,
    read_split_file,
)

SPLIT_FILE = Path(__file__).resolve().parents[1] / "weights" / "split.csv"


@pytest.fixture(scope="module")
def split(real_scans):
    records = read_metadata(CXR_ROOT / "metadata.csv")
    assigned = read_split_file(SPLIT_FILE)
    entries = [assigned[r.sha256] for r in records]
    return records, [e.phash for e in entries], [e.split for e in entries], [e.round for e in entries]


def may_share_a_group(a: str, b: str) -> bool:
    return a == b or {a, b} == {"external", "excluded"}


def test_every_image_has_a_split_and_the_external_source_is_held_out_whole(split):
    records, _, names, _ = split
    assert set(names) == {"train", "val", "test", "external", "excluded"}
    for record, name in zip(records, names, strict=True):
        assert (name == "external") == (record.source == EXTERNAL_SOURCE)


def test_no_patient_crosses_splits(split):
    records, _, names, _ = split
    seen: dict[str, str] = {}
    for record, name in zip(records, names, strict=True):
        if record.patient_id:
            assert may_share_a_group(seen.setdefault(record.patient_id, name), name), record.patient_id


def test_no_near_duplicate_crosses_splits(split):
    _, hashes, names, _ = split
    array = np.array(hashes, dtype=np.uint64)
    names = np.array(names)
    for i in range(len(array) - 1):
        close = np.nonzero(hamming_distances(int(array[i]), array[i + 1 :]) <= NEAR_DUPLICATE_BITS)[0] + i + 1
        for j in close:
            assert may_share_a_group(names[i], names[j]), (i, int(j))


def test_stored_hashes_are_the_images_hashes(split):
    records, hashes, _, _ = split
    for k in range(0, len(records), len(records) // 25):
        assert perceptual_hash(records[k].path) == hashes[k]


def test_split_is_stratified_and_reproducible(split):
    records, hashes, names, rounds = split
    counts = {n: sum(1 for x in names if x == n) for n in ("train", "val", "test")}
    inside = sum(counts.values())
    assert 0.12 < counts["test"] / inside < 0.18 and 0.12 < counts["val"] / inside < 0.18
    first = [i for i, r in enumerate(rounds) if r == 1]
    assert assign_splits(
        [records[i] for i in first], [hashes[i] for i in first], external_sources=[EXTERNAL_SOURCE], seed=0
    ) == [names[i] for i in first]


def test_the_grown_split_keeps_every_earlier_image_and_places_new_ones_by_the_same_rule(split):
    records, hashes, names, rounds = split
    assert set(rounds) == {1, 2}  # the shared set grew once: 1,377 adult images came in round 2
    kept = {r.sha256: n for r, n, k in zip(records, names, rounds, strict=True) if k == 1}
    assert extend_splits(records, hashes, kept, external_sources=[EXTERNAL_SOURCE], seed=0) == names
    added = [(r, n) for r, n, k in zip(records, names, rounds, strict=True) if k == 2]
    in_test = sum(n == "test" for _, n in added) / len(added)
    assert 0.1 < in_test < 0.2  # new groups are cut 70/15/15 like the first round


def test_a_new_image_follows_its_group_and_one_that_joins_two_splits_is_excluded():
    hashes = {"a": 0, "b": 0xFF, "near_a": 0b1, "bridge": 0xF, "far": 0xFFFF_0000_0000}  # a, b: 8 bits apart
    records = [Record(path=Path(f"{k}.png"), label="normal", sha256=k, source="s") for k in hashes]
    split = extend_splits(records, list(hashes.values()), {"a": "train", "b": "test"})
    assert split[:4] == ["train", "test", "excluded", "excluded"]  # the bridge joins a's and b's groups
    alone = extend_splits(records[:3] + records[4:], [0, 0xFF, 0b1, 0xFFFF_0000_0000], {"a": "train", "b": "test"})
    assert alone[:3] == ["train", "test", "train"] and alone[3] in {"train", "val", "test"}


def test_near_duplicates_and_patients_are_grouped_on_made_up_records():
    records = [
        Record(path=Path(f"{i}.png"), label="normal", patient_id=pid, source="s")
        for i, pid in enumerate(["a", "a", "", "", "", "b"])
    ]
    hashes = [0b0, 0xFFFF_0000, 0xFFFF_0000_0000, 0xFFFF_0000_0001, 0xFF00_FF00_FF00_FF00, 0xF0F0_F0F0]
    g = groups(records, hashes)
    assert g[0] == g[1]  # same patient
    assert g[2] == g[3]  # one bit apart
    assert len({g[0], g[2], g[4], g[5]}) == 4
