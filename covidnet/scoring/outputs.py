"""Where rows go: JSON lines, CSV or Parquet, written in flushed blocks, and what an earlier run finished.

Each block (the rows of one batch) is on disk before the next batch runs, so a crash loses no finished row:
JSON lines and CSV are appended and flushed; Parquet is a folder of part files, each written whole and then
renamed into place (``pandas.read_parquet`` and ``pyarrow`` read the folder as one table). ``finished`` reads an
output back for ``--resume``; a line cut short by a crash is dropped before appending.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from covidnet.errors import CovidNetError
from covidnet.scoring.rows import COLUMNS, csv_text, flat

JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
FORMATS = "JSON lines (.jsonl), CSV (.csv) or Parquet (.parquet)"
TAIL_BYTES = 1 << 16


class Output(Protocol):
    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append one block of rows and make it durable before returning."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class Finished:
    """What an output already holds: (scan, backbone) pairs, and (scan, None) for unreadable scans."""

    pairs: frozenset[tuple[str, str | None]] = frozenset()

    def __contains__(self, pair: object) -> bool:
        return pair in self.pairs

    def complete(self, scan: str, backbones: Iterable[str]) -> bool:
        """Whether ``scan`` needs no more work: it was unreadable, or every backbone has its row."""
        return (scan, None) in self.pairs or all((scan, b) in self.pairs for b in backbones)


def open_output(path: Path, *, resume: bool) -> Output:
    """A writer for ``path`` by its suffix; an existing output is only continued with ``resume``."""
    kind = _kind(path)
    if path.exists() and not resume:
        raise CovidNetError(f"{path} exists: pass --resume to continue it, or choose another --out.")
    if kind == "parquet":
        return ParquetParts(path)
    if path.exists():
        _drop_partial_line(path)
    return JsonLines(path) if kind == "json" else CsvFile(path)


def finished(path: Path) -> Finished:
    """The rows an output already holds (nothing when it does not exist)."""
    if not path.exists():
        return Finished()
    kind = _kind(path)
    if kind == "parquet":
        rows = _read_parquet(path, ["scan", "backbone"])
    else:
        lines = path.read_text().splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines.pop()  # cut short by a crash: appending drops it
        rows = [json.loads(line) for line in lines] if kind == "json" else list(csv.DictReader(lines))
    return Finished(frozenset((r["scan"], r.get("backbone") or None) for r in rows))


class JsonLines:
    """Rows as JSON lines, exactly as ``Scored.row`` gives them."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a")

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        self._file.write("".join(json.dumps(row) + "\n" for row in rows))
        _flush(self._file)

    def close(self) -> None:
        self._file.close()


class CsvFile:
    """Rows in their flat form, one CSV line each, under a header of ``COLUMNS``."""

    def __init__(self, path: Path) -> None:
        header = _csv_header(path)
        if header and header != list(COLUMNS):
            raise CovidNetError(f"{path} has other columns than CovidNet writes; choose another --out.")
        self._file = path.open("a", newline="")
        if not header:
            self._file.write(csv_text([]))

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        self._file.write(csv_text(rows, header=False))
        _flush(self._file)

    def close(self) -> None:
        self._file.close()


class ParquetParts:
    """Rows in their flat form, one Parquet file per block in the folder ``path``."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._folder = path
        self._count = 0

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([flat(row) for row in rows], schema=table_schema())
        while (self._folder / f"part-{self._count:06d}.parquet").exists():  # parts of an earlier run stay
            self._count += 1
        name = f"part-{self._count:06d}.parquet"
        partial = self._folder / f".{name}.partial"  # hidden: readers skip it until it is renamed
        pq.write_table(table, partial)
        os.replace(partial, self._folder / name)

    def close(self) -> None:
        """Nothing stays open between blocks."""


def table_schema():
    """``COLUMNS`` as a pyarrow schema (shared by every Parquet part, whichever engine wrote it)."""
    import pyarrow as pa

    types = {str: pa.string(), float: pa.float64(), bool: pa.bool_()}
    return pa.schema([(name, types[kind]) for name, kind in COLUMNS.items()])


def _read_parquet(path: Path, columns: list[str]) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    if not any(path.glob("*.parquet")):
        return []
    return pq.read_table(path, columns=columns, schema=table_schema()).to_pylist()


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        return "json"
    if suffix in (".csv", ".parquet"):
        return suffix[1:]
    raise CovidNetError(f"Cannot tell the format of {path}: name it for {FORMATS}.")


def _flush(file) -> None:
    file.flush()
    os.fsync(file.fileno())


def _csv_header(path: Path) -> list[str]:
    if not path.exists() or path.stat().st_size == 0:
        return []
    with path.open(newline="") as f:
        return next(csv.reader(f), [])


def _drop_partial_line(path: Path) -> None:
    """Cut a last line that a crash left without its newline, so that appending starts on a line of its own."""
    with path.open("rb+") as f:
        end = f.seek(0, os.SEEK_END)
        while end > 0:
            start = max(0, end - TAIL_BYTES)
            f.seek(start)
            newline = f.read(end - start).rfind(b"\n")
            if newline >= 0:
                f.truncate(start + newline + 1)  # no change when the file ends with its newline
                return
            end = start
        f.truncate(0)
