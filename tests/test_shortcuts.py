"""Occlusion masks, the source probe, and the saliency sanity check on the shipped weights."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import covidnet
from covidnet.assessment.shortcuts import SALIENCY_MAX_SPEARMAN, mask_borders, saliency_sanity, source_probe
from covidnet.models.registry import shipped_backbones

SHIPPED = Path(__file__).resolve().parents[1] / "weights"


def test_border_mask_blacks_out_the_top_band_and_corners_only():
    masked = np.asarray(mask_borders(Image.new("L", (200, 100), 200)))
    assert masked[5, 100] == 0 and masked[95, 5] == 0 and masked[95, 195] == 0
    assert masked[50, 100] == 200 and masked[95, 100] == 200


def test_source_probe_finds_a_source_written_into_the_features():
    rng = np.random.default_rng(0)
    sources = ["a"] * 60 + ["b"] * 60
    features = rng.normal(size=(120, 16))
    features[60:, 3] += 3.0  # source b shifts one feature
    found = source_probe(features, sources)
    assert found["accuracy"] > 0.9 and found["majority_baseline"] == 0.5
    assert source_probe(rng.normal(size=(120, 16)), sources)["accuracy"] < 0.7


@pytest.mark.slow
@pytest.mark.parametrize("name", shipped_backbones())
def test_grad_cam_of_each_shipped_model_depends_on_its_learned_weights(name, request):
    model = covidnet.load(name, weights_dir=SHIPPED)  # before the scans: missing weights fail even without data
    real_scans = request.getfixturevalue("real_scans")
    result = saliency_sanity(model, [covidnet.read_scan(p) for p in real_scans])
    assert result["median_spearman"] < SALIENCY_MAX_SPEARMAN, result
