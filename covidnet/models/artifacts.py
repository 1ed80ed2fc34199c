"""Verified artifacts: every file CovidNet saves weights to is written atomically (``save_tensors``), and every file
it loads weights from (a classifier's checkpoint, a chest X-ray gate, the
lung segmenter) is named by a record holding its sha256 (and size, where recorded). ``Artifact.load_tensors``
checks the file against them before a ``weights_only`` load, with one error text for every kind of file, in the
spirit of torchvision's ``Weights``. ``LoadCache`` is the one cache policy: an object built from files is kept
until one of those files changes (size or modification time), then built again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch

from covidnet.errors import CheckpointError

T = TypeVar("T")


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_tensors(state: Any, path: Path) -> str:
    """Write ``state`` (tensors and plain data) to ``path`` atomically and return the file's sha256: it goes to a
    temporary file in the same folder first and replaces ``path`` only once whole, so a crash while saving leaves
    the previous file as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as f:
            torch.save(state, f)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return sha256_of(path)


@dataclass(frozen=True)
class Artifact:
    """A weights file as its record names it: where it is, its sha256 and (when recorded) its size in bytes.

    ``record`` names the metadata file that vouches for it, for the error message.
    """

    path: Path
    sha256: str
    record: str
    size_bytes: int | None = None

    def verify(self) -> None:
        """Raise ``CheckpointError`` unless the file exists and matches its recorded size and sha256."""
        path = Path(self.path)
        if not path.exists():
            raise CheckpointError(f"{path.name} is missing (named in {self.record}); it was not loaded.")
        if (self.size_bytes is not None and path.stat().st_size != self.size_bytes) or sha256_of(path) != self.sha256:
            raise CheckpointError(
                f"{path.name} does not match the sha256 in {self.record}: the file was changed "
                "or damaged. Restore it (e.g. `git checkout weights/`) or retrain; it was not loaded."
            )

    def load_tensors(self) -> Any:
        """The file's tensors, after ``verify`` (``torch.load`` with ``weights_only=True``, on the CPU)."""
        self.verify()
        try:
            return torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch raises many types for unreadable files
            raise CheckpointError(f"Cannot load {Path(self.path).name}: {e}") from None


def _stamp(paths: Sequence[Path]) -> tuple | None:
    """Each file's resolved path, size and modification time; None when one is missing."""
    stamps = []
    for path in map(Path, paths):
        try:
            stat = path.stat()
        except OSError:
            return None
        stamps.append((os.fspath(path.resolve()), stat.st_size, stat.st_mtime_ns))
    return tuple(stamps)


class LoadCache(Generic[T]):
    """Objects built from files, one per key, kept until one of their files changes; safe between threads."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # re-entered when building one object loads another
        self._items: dict[Hashable, tuple[tuple | None, T]] = {}

    def get(self, key: Hashable, files: Sequence[Path], build: Callable[[], T]) -> T:
        """The object for ``key``: built by ``build`` the first time and whenever one of ``files`` changed.

        A missing file is never cached: ``build`` runs and raises the error that names it.
        """
        stamp = _stamp(files)
        with self._lock:
            held = self._items.get(key)
            if held is None or stamp is None or held[0] != stamp:
                built = build()
                if stamp is None:
                    return built
                self._items[key] = (stamp, built)
            return self._items[key][1]
