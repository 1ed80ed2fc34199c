"""``covidnet split``: de-duplicate the data set, group it by patient and write the split file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from covidnet.classes import CLASSES
from covidnet.cli.common import EXIT_OK
from covidnet.data.locations import DEFAULT_DATA, DEFAULT_SPLIT, EXTERNAL_SOURCE


def add(commands: argparse._SubParsersAction) -> None:
    """Register ``split``."""
    split = commands.add_parser("split", help="de-duplicate and split a data set by patient (writes the split file)")
    split.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help=f"folder with metadata.csv (default {DEFAULT_DATA})"
    )
    split.add_argument(
        "--external",
        nargs="*",
        default=[EXTERNAL_SOURCE],
        metavar="SOURCE",
        help="sources held out whole as the external test set",
    )
    split.add_argument("--seed", type=int, default=0)
    split.add_argument(
        "--fresh",
        action="store_true",
        help="split everything anew (default: keep every image already in --out, place only new ones)",
    )
    split.add_argument("--out", type=Path, default=DEFAULT_SPLIT)
    split.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Hash every image, split (or extend the earlier split), write the file and print the counts."""
    from covidnet.data.records import read_metadata
    from covidnet.data.splits import (
        SPLITS,
        assign_splits,
        extend_splits,
        perceptual_hash,
        read_split_file,
        write_split_file,
    )

    records = read_metadata(args.data / "metadata.csv")
    earlier = {} if args.fresh or not args.out.exists() else read_split_file(args.out)
    hashes = [
        earlier[r.sha256].phash if r.sha256 in earlier else perceptual_hash(r.path)
        for r in tqdm(records, desc="hashing", unit="scan", file=sys.stderr)
    ]
    if earlier:
        kept = {sha: entry.split for sha, entry in earlier.items()}
        split = extend_splits(records, hashes, kept, external_sources=args.external, seed=args.seed)
        new_round = max(entry.round for entry in earlier.values()) + 1
        rounds = [earlier[r.sha256].round if r.sha256 in earlier else new_round for r in records]
    else:
        split = assign_splits(records, hashes, external_sources=args.external, seed=args.seed)
        rounds = [1] * len(records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_split_file(args.out, records, hashes, split, rounds)
    for name in SPLITS:
        chosen = [(r, n) for r, s, n in zip(records, split, rounds, strict=True) if s == name]
        by_class = ", ".join(f"{c} {sum(r.label == c for r, _ in chosen)}" for c in CLASSES)
        added = sum(n == max(rounds) for _, n in chosen) if max(rounds) > 1 else 0
        print(f"{name:<9} {len(chosen):>5}  ({by_class})" + (f"  {added} new" if added else ""))
    return EXIT_OK
