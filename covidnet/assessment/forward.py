"""One predictor's forward pass over a list of scans, in batches: what evaluation measures and what the gate is
fitted on."""

from __future__ import annotations

import torch
from tqdm import tqdm

from covidnet.inference.predictor import Forward, Predictor
from covidnet.io.reading import Scan
from covidnet.lungs.segment import LungMask

BATCH = 64


def forward_all(predictor: Predictor, scans: list[Scan], lungs: list[LungMask | None] | None = None) -> Forward:
    """Logits, penultimate features and gate statistics for every scan, in batches (a lung-crop model is fed the
    crops around ``lungs``)."""
    lungs = lungs or [None] * len(scans)
    batches = range(0, len(scans), BATCH)
    parts = [
        predictor.forward(scans[i : i + BATCH], lungs[i : i + BATCH]) for i in tqdm(batches, desc=predictor.backbone)
    ]
    return Forward(
        torch.cat([p.logits for p in parts]),
        torch.cat([p.features for p in parts]),
        [torch.cat([p.stages[k] for p in parts]) for k in range(len(parts[0].stages))],
    )
