"""The lung mask set (``../shared/data/lungs``): its records, a grouped validation split, and augmented batches.

The split keeps every image of one patient, and every near-duplicate, on one side. Groups are ieee8023 patient
ids, looked up by the ieee8023 file name in the classifier pool's metadata (``../shared/data/cxr/metadata.csv``,
which records them for the same GeneralBlockchain copy), merged with near-duplicate clusters: 16×16 greyscale
thumbnails, zero-mean and unit-norm, correlating at 0.97 or more (the rule the data set itself was built with).
COVID-QU-Ex has no patient ids, so its groups are near-duplicate clusters only. Groups are cut into folds
stratified by source and diagnosis with a fixed seed; one fold is the validation part.
"""

from __future__ import annotations

import csv
import random
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from covidnet.errors import CovidNetError
from covidnet.grouping import DisjointSets
from covidnet.io.reading import read_scan
from covidnet.lungs.model import standardise

DEFAULT_LUNG_DATA = Path("../shared/data/lungs")
DEFAULT_PATIENT_METADATA = Path("../shared/data/cxr/metadata.csv")
NEAR_DUPLICATE_CORRELATION = 0.97
THUMBNAIL = 16


@dataclass(frozen=True)
class LungRecord:
    """One image and its mask."""

    image: Path
    mask: Path
    source: str  # "ieee8023v7" or "covidquex"
    diagnosis: str  # covid, pneumonia, normal, ards or unknown
    original_image: str  # "owner/repo:path" in the source snapshot

    @property
    def name(self) -> str:
        return self.image.name


def read_lung_records(data: Path = DEFAULT_LUNG_DATA) -> list[LungRecord]:
    """The pairs listed in ``data/metadata.csv``, in file order."""
    path = Path(data) / "metadata.csv"
    if not path.exists():
        raise CovidNetError(f"No lung mask set at {str(data)!r}: {path.name} is missing.")
    with path.open(newline="") as f:
        return [
            LungRecord(
                image=Path(data) / row["image"],
                mask=Path(data) / row["mask"],
                source=row["source"],
                diagnosis=row["diagnosis"],
                original_image=row["original_image"],
            )
            for row in csv.DictReader(f)
        ]


def patient_ids(records: list[LungRecord], patient_metadata: Path = DEFAULT_PATIENT_METADATA) -> list[str | None]:
    """The ieee8023 patient id of each record where the classifier pool's metadata knows it, else None."""
    known: dict[str, str] = {}
    if Path(patient_metadata).exists():
        with Path(patient_metadata).open(newline="") as f:
            for row in csv.DictReader(f):
                if row.get("patient_id") and row["source"].startswith("GeneralBlockchain/"):
                    known[row["original_path"]] = row["patient_id"]
    ids = []
    for record in records:
        repo, _, path = record.original_image.partition(":")
        ids.append(known.get(path) if repo.startswith("GeneralBlockchain/") else None)
    return ids


def thumbnail(image: Image.Image) -> np.ndarray:
    """The 16×16 greyscale thumbnail, zero-mean and unit-norm, as a flat vector."""
    small = np.asarray(image.convert("L").resize((THUMBNAIL, THUMBNAIL), Image.Resampling.BILINEAR), np.float64)
    small = small.ravel() - small.mean()
    return small / (np.linalg.norm(small) or 1.0)


def group_ids(records: list[LungRecord], patients: list[str | None], thumbnails: np.ndarray) -> list[int]:
    """A group id per record: the union of same-patient and near-duplicate images within one source."""
    sets = DisjointSets(len(records))
    first: dict[tuple[str, str], int] = {}
    for i, (record, patient) in enumerate(zip(records, patients, strict=True)):
        if patient is not None:
            sets.union(i, first.setdefault((record.source, patient), i))
    correlation = thumbnails @ thumbnails.T
    sources = np.array([r.source for r in records])
    for i, j in zip(*np.nonzero(np.triu(correlation >= NEAR_DUPLICATE_CORRELATION, 1)), strict=True):
        if sources[i] == sources[j]:
            sets.union(int(i), int(j))
    return sets.roots()


def split_lung_records(
    records: list[LungRecord],
    *,
    patient_metadata: Path = DEFAULT_PATIENT_METADATA,
    folds: int = 7,
    seed: int = 0,
) -> tuple[list[str], list[int]]:
    """``("train" | "val")`` and the group id of each record: one of ``folds`` grouped folds is validation.

    Folds are stratified by source and diagnosis (rare diagnoses merged into their source).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    thumbs = np.stack([thumbnail(read_scan(r.image).image) for r in records])
    groups = group_ids(records, patient_ids(records, patient_metadata), thumbs)
    strata = [f"{r.source}|{r.diagnosis}" for r in records]
    rare = {s for s, n in Counter(strata).items() if n < folds * 2}
    strata = [r.source if s in rare else s for r, s in zip(records, strata, strict=True)]
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        _, held = next(splitter.split(np.zeros(len(records)), strata, groups=groups))
    held_set = set(held.tolist())
    return ["val" if i in held_set else "train" for i in range(len(records))], groups


def write_split(path: Path, records: list[LungRecord], split: list[str], groups: list[int]) -> None:
    """The split as CSV: image name, source, diagnosis, group, split."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "source", "diagnosis", "group", "split"])
        for record, part, group in zip(records, split, groups, strict=True):
            writer.writerow([record.name, record.source, record.diagnosis, group, part])


def read_mask(path: Path) -> np.ndarray:
    """A mask file as a bool array (True = lung)."""
    with Image.open(path) as mask:
        return np.asarray(mask.convert("L")) > 127


class RandomGamma:
    """Gamma correction with a random exponent, on a [0, 1] float image (X-ray exposure differs by machine)."""

    def __init__(self, low: float = 0.7, high: float = 1.4) -> None:
        self.low, self.high = low, high

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return image.clamp(0, 1) ** random.uniform(self.low, self.high)


class LungBatches:
    """The training pairs held in memory at twice the input size; ``batches()`` yields augmented batches.

    Each pair gets one random geometric transform, applied alike to the image (bilinear) and its
    ``tv_tensors.Mask`` (nearest): rotation, translation, scale, shear and a change of aspect ratio. Then
    the image alone gets brightness, contrast and gamma changes. Both are then reduced to the input size, the
    mask by area averaging, so its border pixels carry the lung fraction as a soft target.
    """

    def __init__(self, records: list[LungRecord], input_size: int, conventions: tuple[str, ...], convention_of):
        self.input_size = input_size
        work = 2 * input_size
        self.images, self.masks, self.channels = [], [], []
        for record in records:
            image = read_scan(record.image).image.resize((work, work), Image.Resampling.BILINEAR)
            mask = Image.fromarray(read_mask(record.mask).astype(np.uint8) * 255)
            mask = mask.resize((work, work), Image.Resampling.BILINEAR)
            self.images.append(torch.from_numpy(np.asarray(image).copy())[None])
            self.masks.append(torch.from_numpy((np.asarray(mask) > 127).copy())[None])
            self.channels.append(conventions.index(convention_of[record.source]))
        self.geometry = v2.Compose(
            [
                v2.RandomAffine(degrees=10, translate=(0.08, 0.08), scale=(0.85, 1.15), shear=(-5, 5, -5, 5)),
                v2.RandomResizedCrop(work, scale=(0.8, 1.0), ratio=(0.8, 1.25), antialias=True),
            ]
        )
        self.exposure = v2.ColorJitter(brightness=0.3, contrast=0.3)
        self.gamma = RandomGamma()

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, batch_size: int, generator: torch.Generator):
        """(images (N, 1, S, S) standardised, soft masks (N, 1, S, S), convention channel (N,)), shuffled."""
        order = torch.randperm(len(self), generator=generator).tolist()
        for start in range(0, len(order) - batch_size + 1, batch_size):
            images, masks = [], []
            for i in order[start : start + batch_size]:
                image, mask = self.geometry(tv_tensors.Image(self.images[i]), tv_tensors.Mask(self.masks[i]))
                image = self.gamma(self.exposure(TF.to_dtype(image, torch.float32, scale=True)))
                images.append(image.as_subclass(torch.Tensor))
                masks.append(mask.as_subclass(torch.Tensor).float())
            size = (self.input_size, self.input_size)
            x = F.interpolate(torch.stack(images), size=size, mode="bilinear", antialias=True, align_corners=False)
            y = F.interpolate(torch.stack(masks), size=size, mode="area")
            channels = torch.tensor([self.channels[i] for i in order[start : start + batch_size]])
            yield standardise(x), y, channels
