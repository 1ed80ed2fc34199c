"""The committed split: no patient and no near-duplicate crosses splits, and the hashes are real."""

from pathlib import Path

import numpy as np
import pytest
from conftest import CXR_ROOT

from covidnet.data import Record, read_metadata
from covidnet.splits import (
    NEAR_DUPLICATE_BITS,
    assign_splits,
    groups,
    hamming_distances,
    perceptual_hash,
    read_split_file,
)

SPLIT_FILE = Path(__file__).resolve().parents[1] / "weights" / "split.csv"
EXTERNAL = "GeneralBlockchain/covid-19-chest-xray-lung-bounding-boxes-dataset"


@pytest.fixture(scope="module")
def split(real_scans):
    records = read_metadata(CXR_ROOT / "metadata.csv")
    assigned = read_split_file(SPLIT_FILE)
    return records, [assigned[r.sha256][0] for r in records], [assigned[r.sha256][1] for r in records]


def may_share_a_group(a: str, b: str) -> bool:
    return a == b or {a, b} == {"external", "excluded"}


def test_every_image_has_a_split_and_the_external_source_is_held_out_whole(split):
    records, _, names = split
    assert set(names) == {"train", "val", "test", "external", "excluded"}
    for record, name in zip(records, names, strict=True):
        assert (name == "external") == (record.source == EXTERNAL)


def test_no_patient_crosses_splits(split):
    records, _, names = split
    seen: dict[str, str] = {}
    for record, name in zip(records, names, strict=True):
        if record.patient_id:
            assert may_share_a_group(seen.setdefault(record.patient_id, name), name), record.patient_id


def test_no_near_duplicate_crosses_splits(split):
    _, hashes, names = split
    array = np.array(hashes, dtype=np.uint64)
    names = np.array(names)
    for i in range(len(array) - 1):
        close = np.nonzero(hamming_distances(int(array[i]), array[i + 1 :]) <= NEAR_DUPLICATE_BITS)[0] + i + 1
        for j in close:
            assert may_share_a_group(names[i], names[j]), (i, int(j))


def test_stored_hashes_are_the_images_hashes(split):
    records, hashes, _ = split
    for k in range(0, len(records), len(records) // 25):
        assert perceptual_hash(records[k].path) == hashes[k]


def test_split_is_stratified_and_reproducible(split):
    records, hashes, names = split
    counts = {n: sum(1 for x in names if x == n) for n in ("train", "val", "test")}
    inside = sum(counts.values())
    assert 0.12 < counts["test"] / inside < 0.18 and 0.12 < counts["val"] / inside < 0.18
    assert assign_splits(records, hashes, external_sources=[EXTERNAL], seed=0) == names


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
