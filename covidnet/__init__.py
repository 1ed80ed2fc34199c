"""CovidNet: chest X-ray classification (COVID-19 / Normal / Pneumonia) with Grad-CAM heatmaps.

A research and teaching demo, not a medical device.

    >>> import covidnet
    >>> model = covidnet.load("resnet18")
    >>> result = model.analyze("scan.png")
    >>> result.probabilities, result.heatmap.shape
    >>> rows = list(covidnet.score("scans/", backbones=["resnet18"]))  # batched, one row per scan and backbone
"""

from covidnet.assessment.unseen_facts import ensemble_threshold
from covidnet.classes import CLASSES, TASK, display_name
from covidnet.errors import (
    CheckpointError,
    CovidNetError,
    ScanError,
    UnknownBackboneError,
    UnknownCamMethodError,
)
from covidnet.inference.cam import cam_methods
from covidnet.inference.predictor import Predictor, load
from covidnet.inference.results import Analysis, Ensemble, ensemble
from covidnet.io.reading import Scan, read_scan
from covidnet.lungs import segment_lungs
from covidnet.models.checkpoints import trained_backbones
from covidnet.models.metadata import CheckpointMetadata
from covidnet.models.registry import backbones, default_backbone
from covidnet.notices import ScanWarning, WarningCode
from covidnet.scoring import score

__version__ = "0.1.0"

__all__ = [
    "CLASSES",
    "TASK",
    "Analysis",
    "CheckpointError",
    "CheckpointMetadata",
    "CovidNetError",
    "Ensemble",
    "Predictor",
    "Scan",
    "ScanError",
    "ScanWarning",
    "UnknownBackboneError",
    "UnknownCamMethodError",
    "WarningCode",
    "backbones",
    "cam_methods",
    "default_backbone",
    "display_name",
    "ensemble",
    "ensemble_threshold",
    "load",
    "read_scan",
    "score",
    "segment_lungs",
    "trained_backbones",
]
