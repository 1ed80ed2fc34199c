"""Shortcut and saliency checks: does a model look at the lungs, or at where an image came from?

- Occlusion: accuracy with the lungs (found by the lung segmenter) blacked out, with everything except the
  lungs blacked out, and with the top band and corners (where markers and text sit) blacked out. A model
  that keeps its accuracy without lungs has learned something other than lung disease.
- Heatmap in the lungs: the share of each Grad-CAM heatmap's mass inside the lungs (DeGrave et al. 2021:
  saliency outside the lungs is the signature of shortcut learning), summarised per class.
- Source probe: how well a linear model on the penultimate features tells the data source apart.
- Saliency sanity (Adebayo et al. 2018): Grad-CAM must change when the model's last stages are
  re-initialised; a rank correlation near 1 would mean the heatmap ignores what the model learned.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from covidnet.inference.predictor import Predictor
from covidnet.io.reading import Scan
from covidnet.models.registry import build_model, cam_layer, get_spec

# Fractions of width and height: markers, text and cropped borders sit in the top band and the corners.
TOP_BAND = 0.15
CORNER = 0.2
PROBE_FOLDS = 5  # cross-validation folds of the source probe (fewer when a source has fewer images)
# How the checks are read. Accuracy this close to chance with the lungs hidden means the model needs the lungs,
# and a source probe this close to its majority baseline finds little of the source in the features.
SHORTCUT_MARGIN = 0.15
# A heatmap that still ranks pixels like the trained model's after the explained layers are re-initialised
# ignores what the model learned. Unrelated maps give a rank correlation near 0, the same map 1; below 0.5,
# less than a quarter of the rank variance is shared (rho² < 0.25).
SALIENCY_MAX_SPEARMAN = 0.5
HALF = 0.5  # a heatmap with more than this share of its mass inside the lungs has most of it there


def mask_lungs(image: Image.Image, lungs: np.ndarray) -> Image.Image:
    """``image`` with the lungs (a boolean mask of its size) blacked out."""
    return _black_out(image, lungs)


def mask_outside_lungs(image: Image.Image, lungs: np.ndarray) -> Image.Image:
    """``image`` with everything except the lungs (a boolean mask of its size) blacked out."""
    return _black_out(image, ~lungs)


def _black_out(image: Image.Image, region: np.ndarray) -> Image.Image:
    pixels = np.array(image)
    pixels[region] = 0
    return Image.fromarray(pixels, mode=image.mode)


def heatmap_in_lungs_summary(shares: list[float], lung_areas: list[float], labels: list[str]) -> dict[str, dict]:
    """Per true class and for all scans: how many heatmaps were measured, the median share of their mass inside
    the lungs, the share of heatmaps with more than half of their mass there, and the median share of the image
    the lungs cover (what a heatmap spread evenly would score)."""

    def summary(indices: list[int]) -> dict:
        if not indices:
            return {"n": 0, "median": None, "share_above_half": None, "lung_area_median": None}
        values = np.array([shares[i] for i in indices])
        return {
            "n": len(indices),
            "median": float(np.median(values)),
            "share_above_half": float(np.mean(values > HALF)),
            "lung_area_median": float(np.median([lung_areas[i] for i in indices])),
        }

    everyone = list(range(len(shares)))
    by_class = {c: [i for i in everyone if labels[i] == c] for c in sorted(set(labels))}
    return {name: summary(indices) for name, indices in ({"all": everyone} | by_class).items()}


def mask_borders(image: Image.Image) -> Image.Image:
    """``image`` with the top band and the four corners blacked out."""
    masked = image.copy()
    w, h = image.size
    draw = ImageDraw.Draw(masked)
    draw.rectangle((0, 0, w, TOP_BAND * h), fill=0)
    cw, ch = CORNER * w, CORNER * h
    for x, y in ((0, 0), (w - cw, 0), (0, h - ch), (w - cw, h - ch)):
        draw.rectangle((x, y, x + cw, y + ch), fill=0)
    return masked


def with_image(scan: Scan, image: Image.Image) -> Scan:
    return Scan(image=image, name=scan.name, format=scan.format, original_size=scan.original_size)


def source_probe(features: np.ndarray, sources: list[str], *, seed: int = 0) -> dict:
    """``PROBE_FOLDS``-fold cross-validated accuracy of a logistic regression predicting the source."""
    names, codes = np.unique(sources, return_inverse=True)
    majority = float(np.bincount(codes).max() / len(codes))
    if len(names) < 2:
        return {"sources": names.tolist(), "accuracy": None, "majority_baseline": majority}
    folds = min(PROBE_FOLDS, int(np.bincount(codes).min()))
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    cv = StratifiedKFold(n_splits=max(folds, 2), shuffle=True, random_state=seed)
    accuracy = cross_val_score(probe, features, codes, cv=cv).mean()
    return {"sources": names.tolist(), "accuracy": float(accuracy), "majority_baseline": majority}


def saliency_sanity(predictor: Predictor, scans: list[Scan], *, seed: int = 0) -> dict:
    """Spearman correlation between Grad-CAM of the trained model and of a copy whose layers from the explained
    one onwards are re-initialised (cascading randomisation); for a parameter-free explained layer, from the start
    of the stage that computes it, so that the explained activations themselves are randomised.

    The maps compared are the CAM grids over what the model saw: a lung-crop model's full-size heatmap is zero
    outside the crop for both models, and those shared zeros would make unrelated maps look alike."""
    randomised = Predictor.of(
        _reinitialised_from_cam_layer(predictor, seed), predictor.meta, segmenter=predictor.segmenter
    )
    correlations = []
    for scan in scans:
        trained = np.asarray(predictor.analyze(scan).grid)
        random_map = np.asarray(randomised.analyze(scan).grid)
        constant = np.ptp(trained) == 0 or np.ptp(random_map) == 0  # no ranking to share: no correlation
        correlations.append(0.0 if constant else float(spearmanr(trained.ravel(), random_map.ravel()).statistic))
    return {
        "n": len(scans),
        "median_spearman": float(np.median(correlations)),
        "max_spearman": float(np.max(correlations)),
    }


def _reinitialised_from_cam_layer(predictor: Predictor, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    fresh = build_model(predictor.backbone)
    model = build_model(predictor.backbone)
    model.load_state_dict(predictor.classifier.network.module.state_dict())
    spec = get_spec(predictor.backbone)
    modules = list(model.named_modules())
    names = [name for name, _ in modules]
    start = names.index(_module_name(model, cam_layer(model, spec)))
    if not any(True for _ in modules[start][1].parameters()):
        # A parameter-free explained layer (VGG's last ReLU): start at the stage that computes it, after the
        # last pooling before it, as ResNet's and DenseNet's explained layers are whole stages.
        start = 1 + max(i for i, (_, m) in enumerate(modules[:start]) if isinstance(m, torch.nn.MaxPool2d))
    reset = {n for n in names[start:] if n}
    state = {
        key: (fresh.state_dict()[key] if any(key.startswith(n + ".") for n in reset) else value)
        for key, value in model.state_dict().items()
    }
    model.load_state_dict(state)
    return model.eval()


def _module_name(model: torch.nn.Module, module: torch.nn.Module) -> str:
    return next(name for name, m in model.named_modules() if m is module)
