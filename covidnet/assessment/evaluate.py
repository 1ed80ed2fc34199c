"""Evaluation: every trained backbone and their ensemble on a labelled set → one report
(``covidnet.assessment.evaluation_report.EvaluationReport``), and what a split's report records in the checkpoints'
metadata (``record_in_metadata``).

The report holds, per backbone and for the ensemble (mean of calibrated probabilities): accuracy,
balanced accuracy, macro AUC and per-class AUC / sensitivity / specificity / PPV with bootstrap
intervals, the confusion matrix, ROC points, ECE before and after temperature scaling, reliability
bins, the chest X-ray gate's flags, the shortcut and saliency checks of ``covidnet.assessment.shortcuts``, and,
given the archive of each ieee8023 film (``covidnet.assessment.archives``), the COVID-19 vs pneumonia AUC within
each archive that holds both.
The lungs are found once per scan with the lung segmenter installed beside the weights; the gate checks them, and
the occlusion and heatmap checks measure against them.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from covidnet.assessment.archives import archive_of
from covidnet.assessment.evaluation_report import (
    BackboneResult,
    EnsembleResult,
    EvaluationReport,
    GateFlags,
    ShortcutChecks,
    Unreadable,
)
from covidnet.assessment.films import Films
from covidnet.assessment.forward import forward_all
from covidnet.assessment.metric_records import Metrics, SourceMetrics
from covidnet.assessment.metrics import (
    covid_vs_pneumonia_auc_by_group,
    expected_calibration_error,
    reliability_bins,
    source_summary,
    summarise,
)
from covidnet.assessment.shortcuts import (
    heatmap_in_lungs_summary,
    mask_borders,
    mask_lungs,
    mask_outside_lungs,
    saliency_sanity,
    source_probe,
    with_image,
)
from covidnet.classes import CLASSES
from covidnet.data.records import Record
from covidnet.errors import ScanError
from covidnet.inference.predictor import Forward, Predictor, installed_segmenter, load
from covidnet.inference.results import average_probabilities
from covidnet.io.reading import Scan, read_scan
from covidnet.lungs.segment import LungMask
from covidnet.models.checkpoints import checkpoint_paths, default_weights_dir
from covidnet.models.metadata import read_checkpoint_metadata, write_checkpoint_metadata

SALIENCY_SCANS = 12
HEATMAP_SCANS = 500  # heatmap-in-lungs is measured on at most this many scans, evenly spread over the list


def evaluate(
    records: list[Record],
    *,
    backbones: list[str],
    data: str,
    weights_dir: Path | None = None,
    shortcuts: bool = True,
    archives: dict[Path, str] | None = None,
    earlier: EvaluationReport | None = None,
) -> EvaluationReport:
    """Evaluate ``backbones`` on ``records`` (unreadable images are counted, not fatal); ``archives`` (image path →
    archive, ``archives.archives_beside``) adds the within-archive COVID-19 vs pneumonia AUC. The shortcut checks
    of a backbone that an ``earlier`` report measured with the same weights on the same films are taken from it
    (they are deterministic and the slowest part)."""
    scans, kept, unreadable = [], [], []
    for record in tqdm(records, desc="reading", unit="scan"):
        try:
            scans.append(read_scan(record.path))
            kept.append(record)
        except ScanError as e:
            unreadable.append(str(e))
    labels = np.array([CLASSES.index(r.label) for r in kept])
    groups = None if archives is None else archive_of(kept, archives)
    segmenter = installed_segmenter(Path(weights_dir or default_weights_dir()))
    lungs = [segmenter.segment(s.image) for s in tqdm(scans, desc="lungs", unit="scan")] if segmenter else None
    results: dict[str, BackboneResult] = {}
    calibrated = []
    for name in backbones:
        predictor = load(name, weights_dir=weights_dir)
        outputs = forward_all(predictor, scans, lungs)
        logits = outputs.logits
        probabilities = torch.softmax(logits / predictor.meta.temperature, 1).numpy()
        raw = torch.softmax(logits, 1).numpy()
        metrics = _metrics(probabilities, labels, groups, name)
        checks = _reusable_checks(earlier, name, predictor.meta.sha256, kept) if shortcuts else None
        if checks is None and shortcuts and lungs is not None:
            predicted, features = logits.argmax(1).numpy(), outputs.features.numpy()
            checks = _shortcut_checks(predictor, scans, lungs, kept, labels, predicted, features)
        results[name] = BackboneResult(
            metrics=metrics,
            ece_before_temperature=expected_calibration_error(raw, labels),
            gate=_gate_flags(predictor, scans, lungs, kept, outputs),
            reliability_before_temperature=reliability_bins(raw, labels),
            weights_sha256=predictor.meta.sha256,
            temperature=predictor.meta.temperature,
            shortcuts=checks,
            by_source=_by_source(probabilities, labels, kept),
        )
        calibrated.append(probabilities)
    ensemble = _metrics(average_probabilities(calibrated), labels, groups, "ensemble")
    return EvaluationReport(
        data=data,
        n=len(kept),
        backbones=results,
        ensemble=EnsembleResult(ensemble, list(backbones)),
        unreadable=Unreadable(len(unreadable), unreadable[:5]),
        sources=sorted({r.source for r in kept}),
        films=Films.of(kept, dict(zip(backbones, calibrated, strict=True))),
    )


def record_in_metadata(report: EvaluationReport, name: str, weights_dir: Path | None = None) -> list[str]:
    """Record ``report`` (the report of split ``name``, a value of ``report_schema.REPORT_NAMES``) in the metadata of
    each backbone it measured: the headline metrics as ``metrics[name]``. Only the metadata JSON is rewritten, never
    the .pt;
    a backbone whose weights are not the ones measured is skipped. Returns the backbones recorded."""
    recorded = []
    for backbone, result in report.backbones.items():
        meta_path = checkpoint_paths(backbone, weights_dir)[1]
        meta = read_checkpoint_metadata(meta_path)
        if meta.sha256 != result.weights_sha256:
            continue  # the report measured other weights
        m, of_interest = result.metrics, meta.task.of_interest
        entry = {
            "data": report.data,
            "n": m.n,
            "macro_auc": asdict(m.macro_auc),
            "accuracy": asdict(m.accuracy),
            f"{of_interest}_sensitivity": asdict(m.per_class[of_interest].sensitivity),
            f"{of_interest}_specificity": asdict(m.per_class[of_interest].specificity),
            "ece": {"before_temperature": result.ece_before_temperature, "after_temperature": m.ece},
        }
        write_checkpoint_metadata(replace(meta, metrics={**meta.metrics, name: entry}), meta_path)
        recorded.append(backbone)
    return recorded


def _reusable_checks(
    earlier: EvaluationReport | None, name: str, weights_sha256: str, records: list[Record]
) -> ShortcutChecks | None:
    """``earlier``'s shortcut checks of backbone ``name``, if it measured these weights on these films (the same
    count and data sources, and the same films where it lists them)."""
    result = None if earlier is None else earlier.backbones.get(name)
    if result is None or result.weights_sha256 != weights_sha256 or earlier.n != len(records):
        return None
    if earlier.sources != sorted({r.source for r in records}):
        return None
    if earlier.films is not None and earlier.films.sha256 != [r.sha256 for r in records]:
        return None
    return result.shortcuts


def _metrics(probabilities: np.ndarray, labels: np.ndarray, archives: list[str | None] | None, name: str) -> Metrics:
    """``summarise``'s metrics, with the within-archive COVID-19 vs pneumonia AUC when the archives are known."""
    summary = summarise(probabilities, labels)
    if archives is not None:
        summary["covid_vs_pneumonia_auc_by_archive"] = covid_vs_pneumonia_auc_by_group(probabilities, labels, archives)
    return Metrics.from_dict(summary, name)


def _by_source(probabilities: np.ndarray, labels: np.ndarray, records: list[Record]) -> dict[str, SourceMetrics]:
    """The per-source view: each data source's scans on their own."""
    origins = np.array([r.origin for r in records])
    return {
        origin: SourceMetrics(**source_summary(probabilities[origins == origin], labels[origins == origin]))
        for origin in sorted(set(origins))
    }


def _gate_flags(
    predictor: Predictor, scans: list[Scan], lungs: list[LungMask] | None, records: list[Record], outputs: Forward
) -> GateFlags:
    """How many scans the chest X-ray gate flags, overall and per data source and class."""
    flagged = [bool(warnings) for warnings in predictor.gate.check(scans, outputs.stages, lungs)]

    def shares(key) -> dict[str, dict]:
        groups: dict[str, list[bool]] = {}
        for record, flag in zip(records, flagged, strict=True):
            groups.setdefault(key(record), []).append(flag)
        return {
            k: {"n": len(v), "flagged": sum(v), "flagged_share": sum(v) / len(v)} for k, v in sorted(groups.items())
        }

    return GateFlags.from_dict(
        {
            "fitted": predictor.gate.fitted,
            "flagged": sum(flagged),
            "flagged_share": sum(flagged) / len(scans),
            "by_source": shares(lambda r: r.source),
            "by_class": shares(lambda r: r.label),
        },
        "gate",
    )


def _shortcut_checks(
    predictor: Predictor,
    scans: list[Scan],
    lungs: list[LungMask],
    records: list[Record],
    labels: np.ndarray,
    predicted: np.ndarray,
    features: np.ndarray,
) -> ShortcutChecks:
    found = [i for i, mask in enumerate(lungs) if mask.plausible]
    every = list(range(len(scans)))

    def accuracy_with(mask, indices: list[int]) -> float:
        masked = [with_image(scans[i], mask(scans[i].image, lungs[i].mask)) for i in indices]
        predicted = forward_all(predictor, masked, [lungs[i] for i in indices]).logits.argmax(1).numpy()
        return float((predicted == labels[indices]).mean())

    explained = found[:: -(-len(found) // HEATMAP_SCANS)]
    in_lungs = [predictor.analyze(scans[i]).heatmap_in_lungs for i in tqdm(explained, desc="heatmaps", unit="scan")]
    measured = [(share, i) for share, i in zip(in_lungs, explained, strict=True) if share is not None]
    chance = float(np.bincount(labels, minlength=len(CLASSES)).max() / len(labels))
    return ShortcutChecks.from_dict(
        {
            "accuracy": float((predicted == labels).mean()),
            "accuracy_lungs_masked": accuracy_with(mask_lungs, found),
            "accuracy_outside_lungs_masked": accuracy_with(mask_outside_lungs, found),
            "accuracy_on_those": float((predicted[found] == labels[found]).mean()),
            "lung_masked_n": len(found),
            "accuracy_top_and_corners_masked": accuracy_with(lambda image, _: mask_borders(image), every),
            "majority_class_accuracy": chance,
            "source_probe": source_probe(features, [r.source for r in records]),
            "saliency_sanity": saliency_sanity(
                predictor, scans[:: max(1, len(scans) // SALIENCY_SCANS)][:SALIENCY_SCANS]
            ),
            "heatmap_in_lungs": heatmap_in_lungs_summary(
                [share for share, _ in measured],
                [lungs[i].area_fraction for _, i in measured],
                [records[i].label for _, i in measured],
            ),
        },
        "shortcuts",
    )
