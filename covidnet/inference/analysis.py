"""``analyze_batch``: scans through one model, composed from its parts: the classifier's one forward pass, the
explainer's heatmaps (one backward pass, from the target scores to the explained layer only), the gate's checks
and the lungs found on each scan."""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING

import torch

from covidnet.classes import display_name
from covidnet.errors import CovidNetError
from covidnet.inference.classifier import Prepared
from covidnet.inference.drawing import mass_inside
from covidnet.inference.explainer import Explainer, explainer
from covidnet.inference.results import Analysis
from covidnet.io.reading import Scan
from covidnet.models.metadata import FamiliarityRecord, Thresholds
from covidnet.notices import ScanWarning, WarningCode

if TYPE_CHECKING:
    from covidnet.inference.predictor import Predictor


def analyze_batch(
    predictor: Predictor,
    scans: Sequence[Scan],
    prepared: Sequence[Prepared],
    *,
    cam: str | Explainer | None,
    target: str | None,
) -> list[Analysis]:
    """Probabilities, gate warnings, lungs and (unless ``cam`` is None) a heatmap of ``target`` (default: each
    scan's prediction) for each scan, from one forward pass over the batch of their ``prepared`` inputs. ``cam`` is
    a method's name (``cam_methods()``) or any ``Explainer``."""
    started = time.perf_counter()
    classifier, gate = predictor.classifier, predictor.gate
    classes = classifier.meta.classes
    if target is not None and target not in classes:
        raise CovidNetError(f"Unknown target class {target!r}. Valid: {', '.join(classes)}.")
    explain = explainer(cam) if isinstance(cam, str) else cam
    batch = torch.stack([p.tensor for p in prepared])
    gradients = explain is not None and explain.needs_gradients
    grids = [None] * len(scans)
    with (
        classifier.network.lock,
        torch.enable_grad() if gradients else torch.inference_mode(),
        gate.watching(classifier.network) as gate_statistics,
        explain.watch(classifier, batch) if explain is not None else nullcontext() as heatmaps,
    ):
        logits, features = classifier.forward(batch)
        if heatmaps is not None:
            targets = torch.full((len(scans),), classes.index(target)) if target else logits.argmax(1)
            grids = heatmaps(logits, targets)
    probabilities = classifier.probabilities(logits)
    familiarity = predictor.familiarity
    distances = [None] * len(scans) if familiarity is None else familiarity.unfamiliarity(features)
    warnings = gate.check(scans, gate_statistics(batch), [p.lungs for p in prepared])
    seconds = (time.perf_counter() - started) / len(scans)
    analyses = []
    meta = classifier.meta
    rows = zip(scans, prepared, probabilities, grids, warnings, distances, strict=True)
    for scan, ready, probs, grid, flags, unfamiliarity in rows:
        prediction = max(probs, key=probs.get)
        heatmap = ready.geometry.to_image(grid) if grid is not None else None
        lungs = ready.lungs
        found = lungs is not None and lungs.plausible
        in_lungs = mass_inside(heatmap, lungs.mask) if heatmap is not None and found else None
        explained = target or prediction
        notes = lung_notes(classifier.preprocessing.crops_to_lungs and not found, in_lungs, meta.thresholds, explained)
        notes += familiarity_notes(unfamiliarity, meta.familiarity)
        analyses.append(
            Analysis(
                backbone=classifier.backbone,
                probabilities=probs,
                prediction=prediction,
                target=explained,
                heatmap=heatmap,
                grid=grid,
                image=scan.image,
                cam=None if explain is None else explain.name,
                seconds=seconds,
                warnings=[*scan.warnings, *flags, *notes],
                uncertain_below=classifier.meta.thresholds.uncertain_below,
                lungs=lungs,
                heatmap_in_lungs=in_lungs,
                unfamiliarity=unfamiliarity,
            )
        )
    return analyses


def lung_notes(uncropped: bool, in_lungs: float | None, thresholds: Thresholds, target: str) -> list[ScanWarning]:
    """The analysis's warnings about the lungs: a lung-crop model fed the whole image (``uncropped``), and a heatmap
    of ``target`` with less of it inside the lungs than the cut set on validation films (none without a cut)."""
    notes = []
    if uncropped:
        message = (
            "No plausible lungs were found, so this model, trained on images cropped to the lungs, "
            "saw the whole image instead."
        )
        notes.append(ScanWarning(WarningCode.NOT_CROPPED, message))
    cut, tail = thresholds.heatmap_in_lungs_below, thresholds.heatmap_in_lungs_quantile
    if in_lungs is not None and cut is not None and tail is not None and in_lungs < cut:
        name = display_name(target)
        message = (
            f"Much of what drove the {name} score lies outside the lungs: only {in_lungs:.0%} of the {name} heatmap "
            f"is inside them, less than on {1 - tail:.0%} of validation films (cut {cut:.0%}). The model may be "
            "reading something else, such as markers, text or the body outline."
        )
        details = {"heatmap_in_lungs": in_lungs, "cut": cut, "target": target}
        notes.append(ScanWarning(WarningCode.HEATMAP_OUTSIDE_LUNGS, message, details))
    return notes


def familiarity_notes(unfamiliarity: float | None, record: FamiliarityRecord | None) -> list[ScanWarning]:
    """The unfamiliar-film note: only for a film above the signal's threshold, and only when measuring the signal
    found that it carries information (``record.shown``)."""
    if unfamiliarity is None or record is None or not record.shown or unfamiliarity <= 1.0:
        return []
    message = "This film looks unlike the films CovidNet learned from; its answer is more likely wrong."
    if record.error_above is not None and record.error_below is not None:
        message += (
            f" On {record.measured_on}, {record.error_above:.0%} of the answers on films this unfamiliar were wrong, "
            f"against {record.error_below:.0%} on the others."
        )
    return [ScanWarning(WarningCode.UNFAMILIAR_FILM, message, {"unfamiliarity": unfamiliarity})]
