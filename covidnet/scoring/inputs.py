"""What to score: files, folders, glob patterns and listings (CSV or Parquet with a ``path`` column) → scan paths.

Folders are walked for files with a scan suffix, in sorted order; a listing's relative paths are relative to the
listing's folder. A path that does not exist and is no pattern is kept: reading it gives the scan's error row.
"""

from __future__ import annotations

import csv
import glob
from collections.abc import Iterable, Iterator
from pathlib import Path

from covidnet.errors import CovidNetError
from covidnet.io.reading import SCAN_SUFFIXES

LISTING_SUFFIXES = (".csv", ".parquet")
PATH_COLUMN = "path"
GLOB_CHARACTERS = "*?["


def scan_paths(inputs: Iterable[str | Path]) -> list[str]:
    """Every scan path the inputs name, in order (duplicates kept)."""
    return [str(path) for given in inputs for path in _expand(Path(given))]


def _expand(path: Path) -> Iterator[Path]:
    if path.is_dir():
        yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SCAN_SUFFIXES)
    elif path.is_file() and path.suffix.lower() in LISTING_SUFFIXES:
        yield from (resolve(entry, path) for entry in read_listing(path))
    elif not path.exists() and any(c in str(path) for c in GLOB_CHARACTERS):
        for match in sorted(glob.glob(str(path), recursive=True)):
            yield from _expand(Path(match))
    else:
        yield path


def read_listing(listing: Path) -> list[str]:
    """The ``path`` column of a CSV or Parquet listing, as written."""
    if listing.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(listing)
        columns = table.column_names
        entries = table.column(PATH_COLUMN).to_pylist() if PATH_COLUMN in columns else None
    else:
        with listing.open(newline="") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            entries = [row[PATH_COLUMN] for row in reader] if PATH_COLUMN in columns else None
    if entries is None:
        raise CovidNetError(f"{listing} has no {PATH_COLUMN!r} column (it has: {', '.join(columns) or 'none'}).")
    return entries


def resolve(entry: str, listing: Path) -> Path:
    """A listing's entry as a path: relative entries are relative to the listing's folder."""
    return listing.parent / entry
