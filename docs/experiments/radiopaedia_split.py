"""Issue 22's within-archive arm: a split file with ieee8023's Radiopaedia films moved from ``external`` into
``train`` (every film of their patients, so no patient straddles the split); every other line as in the input.

    python docs/experiments/radiopaedia_split.py weights/split.csv runs/radio/split.csv
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

CXR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cxr"


def main(split_in: Path, split_out: Path) -> None:
    archives = list(csv.DictReader((CXR / "ieee8023_archives.csv").open()))
    patients = {row["patient_id"] for row in archives if row["archive"] == "radiopaedia"}
    metadata = list(csv.DictReader((CXR / "metadata.csv").open()))
    moved = {row["sha256"] for row in metadata if row["patient_id"] in patients}
    with split_in.open() as f:
        reader = csv.DictReader(f)
        rows, fields = list(reader), reader.fieldnames
    straddling = {r["split"] for r in rows if r["sha256"] in moved} - {"external"}
    if straddling:
        raise SystemExit(f"Radiopaedia patients already in {sorted(straddling)}: they would straddle the split")
    for row in rows:
        if row["sha256"] in moved:
            row["split"] = "train"
    split_out.parent.mkdir(parents=True, exist_ok=True)
    with split_out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    films = [r for r in metadata if r["sha256"] in moved]
    labels = {label: sum(r["label"] == label for r in films) for label in sorted({r["label"] for r in films})}
    print(f"moved {len(films)} films of {len(patients)} patients into train: {labels}; wrote {split_out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
