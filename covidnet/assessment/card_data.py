"""The model card's sentences about the data: its summary, the split rule, and the confounds it carries
(paediatric pneumonia, COVID-19 and pneumonia from different sources, upscaled sources)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from PIL import Image

from covidnet.assessment.evaluation_report import EvaluationReport
from covidnet.classes import TASK
from covidnet.data.records import Record
from covidnet.data.splits import SplitEntry

PAEDIATRIC_DATASETS = ("kermany",)  # Kermany et al.: children aged one to five, one hospital in Guangzhou
TEXT_MINED_DATASET = "nih-chestxray8"  # NIH ChestX-ray8: labels text-mined from the radiology reports


def data_summary(records: list[Record], assigned: dict[str, SplitEntry]) -> str:
    """One sentence on the data: how many images, from how many repositories, and how the split grew."""
    added = Counter(entry.split for entry in assigned.values() if entry.round > 1)
    grown = (
        f" The split grew with the data: {sum(added.values()):,} images added later were placed without moving "
        "any earlier one, so the shipped models' training images are unchanged; the test split now also holds "
        f"{added['test']:,} of the added images, from sources the shipped models may never have trained on."
        if added
        else ""
    )
    repositories = len({r.source for r in records})
    return (
        f"{len(records):,} de-duplicated public chest X-rays from {repositories} GitHub repositories "
        f"(`../shared/data/cxr`, see its README).{grown}"
    )


def split_rule(records: list[Record], assigned: dict[str, SplitEntry]) -> str:
    """What is held out as the external test set, and the shares of the train/val/test split."""
    split_of = {r.sha256: assigned[r.sha256].split for r in records if r.sha256 in assigned}
    external = sorted({(r.source, r.dataset) for r in records if split_of.get(r.sha256) == "external"})
    held_out = (
        "Held out whole as the external test set: "
        + ", ".join(f"{source} ({dataset})" for source, dataset in external)
        + "; images from other sources that duplicate or share a patient with it are excluded from training. "
        if external
        else ""
    )
    counts = Counter(split_of.values())
    inside = [counts[name] for name in ("train", "val", "test")]
    shares = "/".join(f"{n / sum(inside):.0%}" for n in inside) if sum(inside) else "n/a"
    return (
        f"{held_out}The rest is split into train/val/test ({shares} of its images), stratified by class and "
        "source, with a fixed seed (`weights/split.csv`)."
    )


def paediatric_confound(records: list[Record], assigned: dict[str, SplitEntry]) -> str:
    """The share of paediatric pneumonia images (and, once the split has grown, among the training images of its
    first round, which the shipped models trained on), and where the adult ones come from."""
    pneumonia = [r for r in records if r.label == TASK.other_disease]
    children = sum(r.dataset in PAEDIATRIC_DATASETS for r in pneumonia)
    if not children:
        return ""
    entries = [assigned.get(r.sha256) for r in pneumonia]
    first = [r for r, e in zip(pneumonia, entries, strict=True) if e and e.split == "train" and e.round == 1]
    grown = any(entry.round > 1 for entry in assigned.values()) and first
    trained = (
        f"; {sum(r.dataset in PAEDIATRIC_DATASETS for r in first) / len(first):.0%} of the first split round's "
        "training images, which the shipped models trained on"
        if grown
        else ""
    )
    adults = Counter(r.dataset for r in pneumonia if r.dataset not in PAEDIATRIC_DATASETS)
    origin = _counts(adults)
    noisy = f"; {TEXT_MINED_DATASET}'s labels are text-mined (noisy)" if TEXT_MINED_DATASET in adults else ""
    return (
        f"**Pneumonia is {children / len(pneumonia):.0%} paediatric** (Kermany, one hospital in Guangzhou: "
        f"{children:,} of {len(pneumonia):,} images{trained}) while COVID-19 is adult: a model can learn "
        f'"child → pneumonia or normal, adult with opacities → COVID-19". The adult pneumonia images: '
        f"{origin}{noisy}."
    )


def covid_pneumonia_confound(
    records: list[Record], assigned: dict[str, SplitEntry], reports: dict[str, EvaluationReport]
) -> str:
    """A warning when no training source holds both COVID-19 and pneumonia images (then the source and the
    COVID-19-against-pneumonia label are one variable in training), with what the external test measured."""
    training = [r for r in records if (entry := assigned.get(r.sha256)) and entry.split == "train"]
    covid = Counter(r.dataset for r in training if r.label == TASK.of_interest)
    pneumonia = Counter(r.dataset for r in training if r.label == TASK.other_disease)
    if not covid or not pneumonia or covid.keys() & pneumonia.keys():
        return ""
    external = reports["external"].ensemble.metrics.covid_vs_pneumonia_auc if "external" in reports else None
    measured = (
        f" The external source holds both; on it the ensemble's COVID-19 vs pneumonia AUC is {external.value:.3f}."
        if external and external.value is not None
        else ""
    )
    return (
        f"**No training source holds both COVID-19 and pneumonia images** (training images, COVID-19: "
        f"{_counts(covid)}; pneumonia: {_counts(pneumonia)}): in training, the archive a film comes from and "
        "whether it shows COVID-19 or another pneumonia are one variable, which no sampling, augmentation or source "
        "penalty can separate, so on an unseen source a model tells the two apart only as far as it learned the "
        f"disease.{measured}"
    )


def _counts(counter: Counter) -> str:
    """``name n, name n, …``, most common first."""
    return ", ".join(f"{name} {n:,}" for name, n in counter.most_common())


def upscaled_sources(metadata_csv: Path) -> str:
    """The sources whose images were stored as small squares and upscaled (from the metadata's original sizes)."""
    with metadata_csv.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("orig_width") and r.get("orig_height")]
    by_source: dict[str, list[dict]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    upscaled = []
    for source, source_rows in sorted(by_source.items()):
        (size, n), *_ = Counter((int(r["orig_width"]), int(r["orig_height"])) for r in source_rows).most_common(1)
        with Image.open(metadata_csv.parent / source_rows[0]["path"]) as stored:
            long_side = max(stored.size)
        if size[0] == size[1] and size[0] < long_side and 2 * n >= len(source_rows):
            upscaled.append(f"{source} at {size[0]}×{size[1]}")
    if not upscaled:
        return ""
    return (
        f"Some sources were stored as small squares and upscaled ({'; '.join(upscaled)}), so sharpness and aspect "
        "ratio differ by source; the source probe above measures how much of this the features carry."
    )
