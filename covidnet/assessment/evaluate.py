"""Evaluation: every trained backbone and their ensemble on a labelled set → one JSON report.

The report holds, per backbone and for the ensemble (mean of calibrated probabilities): accuracy,
balanced accuracy, macro AUC and per-class AUC / sensitivity / specificity / PPV with 95% bootstrap
intervals, the confusion matrix, ROC points, ECE before and after temperature scaling, reliability
bins, and the shortcut and saliency checks of ``covidnet.assessment.shortcuts``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from covidnet.assessment.metrics import summarise
from covidnet.assessment.shortcuts import mask_borders, mask_lungs, saliency_sanity, source_probe, with_image
from covidnet.classes import CLASSES
from covidnet.errors import ScanError
from covidnet.inference.gate import screen
from covidnet.inference.predictor import Outputs, Predictor, load
from covidnet.io.reading import Scan, read_scan
from covidnet.training.calibration import expected_calibration_error, reliability_bins
from covidnet.training.data import Record

BATCH = 64
SALIENCY_SCANS = 12


def evaluate(
    records: list[Record],
    *,
    backbones: list[str],
    data: str,
    weights_dir: Path | None = None,
    shortcuts: bool = True,
) -> dict:
    """Evaluate ``backbones`` on ``records`` (unreadable images are counted, not fatal)."""
    scans, kept, unreadable = [], [], []
    for record in tqdm(records, desc="reading", unit="scan"):
        try:
            scans.append(read_scan(record.path))
            kept.append(record)
        except ScanError as e:
            unreadable.append(str(e))
    labels = np.array([CLASSES.index(r.label) for r in kept])
    report: dict = {
        "data": data,
        "n": len(kept),
        "unreadable": {"count": len(unreadable), "examples": unreadable[:5]},
        "sources": sorted({r.source for r in kept}),
        "backbones": {},
    }
    calibrated = []
    for name in backbones:
        predictor = load(name, weights_dir=weights_dir)
        outputs = forward_all(predictor, scans)
        logits = outputs.logits
        probabilities = torch.softmax(logits / predictor.meta.temperature, 1).numpy()
        raw = torch.softmax(logits, 1).numpy()
        metrics = summarise(probabilities, labels)
        metrics["ece"] = {
            "before_temperature": expected_calibration_error(raw, labels),
            "after_temperature": metrics["ece"],
        }
        metrics["reliability_before_temperature"] = reliability_bins(raw, labels)
        metrics["weights_sha256"] = predictor.meta.sha256
        metrics["temperature"] = predictor.meta.temperature
        if shortcuts:
            metrics["shortcuts"] = _shortcut_checks(
                predictor, scans, kept, labels, metrics["accuracy"]["value"], outputs.features.numpy()
            )
        metrics["gate"] = _gate_flags(predictor, scans, kept, outputs)
        report["backbones"][name] = metrics
        calibrated.append(probabilities)
    report["ensemble"] = summarise(np.mean(calibrated, axis=0), labels)
    report["ensemble"]["members"] = list(backbones)
    return report


def forward_all(predictor: Predictor, scans: list[Scan]) -> Outputs:
    """Logits, penultimate features and gate statistics for every scan, in batches."""
    batches = range(0, len(scans), BATCH)
    parts = [predictor.forward_batch(scans[i : i + BATCH]) for i in tqdm(batches, desc=predictor.backbone)]
    return Outputs(
        torch.cat([p.logits for p in parts]),
        torch.cat([p.features for p in parts]),
        [torch.cat([p.stages[k] for p in parts]) for k in range(len(parts[0].stages))],
    )


def _gate_flags(predictor: Predictor, scans: list[Scan], records: list[Record], outputs: Outputs) -> dict:
    """How many scans the chest X-ray gate flags, overall and per data source and class."""
    scores = predictor.gate_scores(outputs)
    flagged = [
        bool(screen(scan, None if scores is None else float(scores[i]), predictor.gate)) for i, scan in enumerate(scans)
    ]

    def shares(key) -> dict[str, dict]:
        groups: dict[str, list[bool]] = {}
        for record, flag in zip(records, flagged, strict=True):
            groups.setdefault(key(record), []).append(flag)
        return {
            k: {"n": len(v), "flagged": sum(v), "flagged_share": sum(v) / len(v)} for k, v in sorted(groups.items())
        }

    return {
        "fitted": predictor.gate is not None,
        "flagged": sum(flagged),
        "flagged_share": sum(flagged) / len(scans),
        "by_source": shares(lambda r: r.source),
        "by_class": shares(lambda r: r.label),
    }


def _shortcut_checks(
    predictor: Predictor,
    scans: list[Scan],
    records: list[Record],
    labels: np.ndarray,
    accuracy: float,
    features: np.ndarray,
) -> dict:
    def accuracy_with(mask) -> float:
        masked = [with_image(s, mask(s.image)) for s in scans]
        return float((forward_all(predictor, masked).logits.argmax(1).numpy() == labels).mean())

    chance = float(np.bincount(labels, minlength=len(CLASSES)).max() / len(labels))
    return {
        "accuracy": accuracy,
        "accuracy_lungs_masked": accuracy_with(mask_lungs),
        "accuracy_top_and_corners_masked": accuracy_with(mask_borders),
        "majority_class_accuracy": chance,
        "source_probe": source_probe(features, [r.source for r in records]),
        "saliency_sanity": saliency_sanity(predictor, scans[:: max(1, len(scans) // SALIENCY_SCANS)][:SALIENCY_SCANS]),
    }
