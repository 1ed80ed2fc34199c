"""Evaluation: every trained backbone and their ensemble on a labelled set → one JSON report.

The report holds, per backbone and for the ensemble (mean of calibrated probabilities): accuracy,
balanced accuracy, macro AUC and per-class AUC / sensitivity / specificity / PPV with 95% bootstrap
intervals, the confusion matrix, ROC points, ECE before and after temperature scaling, reliability
bins, and the shortcut and saliency checks of ``covidnet.shortcuts``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from covidnet.calibration import expected_calibration_error, reliability_bins
from covidnet.classes import CLASSES
from covidnet.data import Record
from covidnet.errors import ScanError
from covidnet.gate import screen
from covidnet.imaging import Scan, read_scan
from covidnet.metrics import summarise
from covidnet.predict import Predictor, load
from covidnet.shortcuts import mask_borders, mask_lungs, saliency_sanity, source_probe, with_image

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
        logits, features = forward_all(predictor, scans)
        probabilities = torch.softmax(logits / predictor.card.temperature, 1).numpy()
        raw = torch.softmax(logits, 1).numpy()
        metrics = summarise(probabilities, labels)
        metrics["ece"] = {
            "before_temperature": expected_calibration_error(raw, labels),
            "after_temperature": metrics["ece"],
        }
        metrics["reliability_before_temperature"] = reliability_bins(raw, labels)
        metrics["weights_sha256"] = predictor.card.sha256
        metrics["temperature"] = predictor.card.temperature
        if shortcuts:
            metrics["shortcuts"] = _shortcut_checks(
                predictor, scans, kept, labels, metrics["accuracy"]["value"], features.numpy()
            )
        metrics["gate"] = _gate_flags(predictor, scans, features)
        report["backbones"][name] = metrics
        calibrated.append(probabilities)
    report["ensemble"] = summarise(np.mean(calibrated, axis=0), labels)
    report["ensemble"]["members"] = list(backbones)
    return report


def forward_all(predictor: Predictor, scans: list[Scan]) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and penultimate features for every scan, in batches."""
    batches = range(0, len(scans), BATCH)
    outputs = [predictor.forward_batch(scans[i : i + BATCH]) for i in tqdm(batches, desc=predictor.backbone)]
    return torch.cat([o[0] for o in outputs]), torch.cat([o[1] for o in outputs])


def _gate_flags(predictor: Predictor, scans: list[Scan], features: torch.Tensor) -> dict:
    """How many scans the chest X-ray gate flags."""
    distances = predictor.gate_distances(features)
    reasons = [
        screen(scan, None if distances is None else float(distances[i]), predictor.gate) for i, scan in enumerate(scans)
    ]
    flagged = sum(bool(r) for r in reasons)
    return {"fitted": predictor.gate is not None, "flagged": flagged, "flagged_share": flagged / len(scans)}


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
        return float((forward_all(predictor, masked)[0].argmax(1).numpy() == labels).mean())

    chance = float(np.bincount(labels, minlength=len(CLASSES)).max() / len(labels))
    return {
        "accuracy": accuracy,
        "accuracy_lungs_masked": accuracy_with(mask_lungs),
        "accuracy_top_and_corners_masked": accuracy_with(mask_borders),
        "majority_class_accuracy": chance,
        "source_probe": source_probe(features, [r.source for r in records]),
        "saliency_sanity": saliency_sanity(predictor, scans[:: max(1, len(scans) // SALIENCY_SCANS)][:SALIENCY_SCANS]),
    }
