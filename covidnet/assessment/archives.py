"""The archive each ieee8023 film was taken from (Radiopaedia, Eurorad, SIRM, …), read from the archive file beside
the data's ``metadata.csv`` (``ARCHIVES_FILE``: ``path,label,patient_id,archive,url,doi``, one row per film).

Pooled over ieee8023, a COVID-19 vs pneumonia AUC partly tells archives apart (most archives hold COVID-19
only); within one archive that holds both it does not. ``covidnet evaluate`` measures it per archive
(``metrics.covid_vs_pneumonia_auc_by_group``) when the file is there.
"""

from __future__ import annotations

import csv
from pathlib import Path

from covidnet.data.records import Record
from covidnet.errors import CovidNetError

ARCHIVES_FILE = "ieee8023_archives.csv"
# Not one archive: "journal" gathers the figures of many papers (any URL that is not a known archive), so within it
# COVID-19 and pneumonia films still come from different places.
NOT_ONE_ARCHIVE = frozenset({"journal"})
ARCHIVE_NAMES = {"radiopaedia": "Radiopaedia", "eurorad": "Eurorad", "sirm": "SIRM", "hannover": "Hannover (MHH)"}


def archive_name(archive: str) -> str:
    """How an archive is named in tables (``ARCHIVE_NAMES``, else as written in the file)."""
    return ARCHIVE_NAMES.get(archive, archive)


def archives_beside(metadata_csv: Path, *, root: Path | None = None) -> dict[Path, str] | None:
    """Image path → archive, from ``ARCHIVES_FILE`` beside ``metadata_csv`` (paths relative to ``root``, as
    ``read_metadata`` reads them; default: that folder); None when there is no such file."""
    path = Path(metadata_csv).parent / ARCHIVES_FILE
    return read_archives(path, root=root) if path.exists() else None


def read_archives(csv_path: Path, *, root: Path | None = None) -> dict[Path, str]:
    """Image path (``root`` / the ``path`` column, as in ``read_metadata``) → archive, for the films of one of
    them (``NOT_ONE_ARCHIVE`` and empty archives left out)."""
    csv_path = Path(csv_path)
    root = Path(root) if root is not None else csv_path.parent
    with csv_path.open(newline="") as f:
        reader = csv.DictReader(f)
        if missing := {"path", "archive"} - set(reader.fieldnames or []):
            raise CovidNetError(f"{csv_path} needs the columns path,archive; missing: {', '.join(sorted(missing))}.")
        rows = [(row["path"], (row["archive"] or "").strip().lower()) for row in reader]
    return {root / path: archive for path, archive in rows if archive and archive not in NOT_ONE_ARCHIVE}


def archive_of(records: list[Record], archives: dict[Path, str]) -> list[str | None]:
    """Each record's archive (None for a film of no archive in ``archives``), joined on the image path."""
    return [archives.get(Path(r.path)) for r in records]
