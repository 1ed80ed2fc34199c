"""Issue 22's within-archive arm: a split file with ieee8023's Radiopaedia films moved from ``external`` into
``train`` (every film of their patients, so no patient straddles the split); every other line as in the input.

    python docs/experiments/radiopaedia_split.py weights/split.csv runs/radio/split.csv
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from covidnet.assessment.archives import read_archives
from covidnet.data.locations import DEFAULT_DATA
from covidnet.data.records import read_metadata
from covidnet.data.splits import read_split_file, write_split_file


def main(split_in: Path, split_out: Path) -> None:
    entries = read_split_file(split_in)
    records = [r for r in read_metadata(DEFAULT_DATA / "metadata.csv") if r.sha256 in entries]
    archives = read_archives(DEFAULT_DATA / "ieee8023_archives.csv", root=DEFAULT_DATA)
    patients = {r.patient for r in records if archives.get(r.path) == "radiopaedia"}
    moved = [r for r in records if r.patient in patients]
    if straddling := {entries[r.sha256].split for r in moved} - {"external"}:
        raise SystemExit(f"Radiopaedia patients already in {sorted(straddling)}: they would straddle the split")
    split = ["train" if r.patient in patients else entries[r.sha256].split for r in records]
    split_out.parent.mkdir(parents=True, exist_ok=True)
    hashes, rounds = [entries[r.sha256].phash for r in records], [entries[r.sha256].round for r in records]
    write_split_file(split_out, records, hashes, split, rounds)
    labels = dict(sorted(Counter(r.label for r in moved).items()))
    print(f"moved {len(moved)} films of {len(patients)} patients into train: {labels}; wrote {split_out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
