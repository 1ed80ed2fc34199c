"""Analyses that know where the lungs are: the heatmap measured against them, the shortcut alarm, the outline, the
lung crop as a preprocessing step (mapped back onto the image), and the gate's lung and lateral-view checks."""

from __future__ import annotations

import io
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import covidnet
from covidnet.assessment.shortcuts import heatmap_in_lungs_summary, mask_lungs, mask_outside_lungs, saliency_sanity
from covidnet.errors import CheckpointError
from covidnet.inference.analysis import lung_notes
from covidnet.inference.drawing import OUTLINE_RGB, mass_inside
from covidnet.inference.gate import Gate, looks_lateral
from covidnet.inference.predictor import Predictor, installed_segmenter, load_classifier
from covidnet.io.preprocessing import build_transform, widen
from covidnet.lungs import LungMask, load_segmenter
from covidnet.lungs.checkpoint import lungs_paths
from covidnet.lungs.segment import LungQuality, split_joined_lungs
from covidnet.models.checkpoints import load_checkpoint, save_checkpoint
from covidnet.models.metadata import Thresholds, read_checkpoint_metadata
from covidnet.models.registry import build_model
from covidnet.notices import WarningCode

SHIPPED_LUNGS = lungs_paths(None)


@pytest.fixture(scope="module")
def crop_weights(tmp_path_factory):
    """A weights folder with a seeded resnet18 trained "on lung crops" (as its metadata says) and the segmenter."""
    folder = tmp_path_factory.mktemp("crop-weights")
    segmenter = load_segmenter()
    torch.manual_seed(0)
    crop = {"to": "lungs", "margin": 0.1, "segmenter_sha256": segmenter.meta.sha256}
    save_checkpoint(build_model("resnet18"), backbone="resnet18", input_size=128, out_dir=folder, crop=crop)
    for path in SHIPPED_LUNGS:
        shutil.copy(path, folder)
    return folder


def fresh(name: str, folder: Path) -> Predictor:
    """The predictor of ``name`` in ``folder`` without a gate, with the folder's lung segmenter (if any)."""
    return Predictor(load_classifier(name, folder), segmenter=installed_segmenter(folder))


def _scan(pixels: np.ndarray) -> covidnet.Scan:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return covidnet.read_scan(buffer.getvalue(), name="made.png")


def test_the_heatmap_is_measured_against_the_lungs_found(weights_dir, real_scans):
    scan = covidnet.read_scan(real_scans[1])
    result = fresh("resnet18", weights_dir).analyze(scan)
    assert result.lungs is not None and result.lungs.plausible
    assert result.lungs.mask.shape == result.heatmap.shape
    expected = result.heatmap[result.lungs.mask].sum() / result.heatmap.sum()
    assert result.heatmap_in_lungs == pytest.approx(expected)
    assert not any(w.code == WarningCode.HEATMAP_OUTSIDE_LUNGS for w in result.warnings)  # no cut recorded here
    row = result.to_dict()
    assert row["heatmap_in_lungs"] == result.heatmap_in_lungs and row["lungs"]["plausible"] is True


def test_the_shortcut_alarm_names_the_share_and_the_explained_class_in_plain_words(weights_dir, real_scans):
    """A heatmap made to lie outside the lungs raises the alarm at the shipped model's cut (set on validation
    films by ``covidnet fit-familiarity``); the same map inside them does not, nor does any map without a cut."""
    model = fresh("resnet18", weights_dir)
    result = model.analyze(covidnet.read_scan(real_scans[0]))
    cut = read_checkpoint_metadata(SHIPPED_LUNGS[0].parent / "mobilenet_v2.json").thresholds
    assert cut.heatmap_in_lungs_below is not None and cut.heatmap_in_lungs_quantile == pytest.approx(0.1)
    outside = lung_notes(False, mass_inside(~result.lungs.mask * 1.0, result.lungs.mask), cut, "pneumonia")
    inside = lung_notes(False, mass_inside(result.lungs.mask * 1.0, result.lungs.mask), cut, "pneumonia")
    assert [w.code for w in outside] == [WarningCode.HEATMAP_OUTSIDE_LUNGS] and not inside
    message = outside[0].message
    assert "outside the lungs" in message and "0%" in message and "90% of validation films" in message
    assert message.count(covidnet.display_name("pneumonia")) == 2 and outside[0].details["target"] == "pneumonia"
    assert not lung_notes(False, 0.0, Thresholds(), "pneumonia")


def test_without_a_segmenter_there_are_no_lung_figures(weights_dir, real_scans, tmp_path):
    for path in weights_dir.glob("resnet18.*"):
        shutil.copy(path, tmp_path)
    result = fresh("resnet18", tmp_path).analyze(real_scans[0])
    assert result.lungs is None and result.heatmap_in_lungs is None
    assert not any(w.code == WarningCode.HEATMAP_OUTSIDE_LUNGS for w in result.warnings)


def test_the_lung_outline_is_drawn_on_the_lungs_border_only(weights_dir, real_scans):
    result = fresh("resnet18", weights_dir).analyze(real_scans[2])
    plain = np.asarray(result.overlay())
    outlined = np.asarray(result.overlay(lung_outline=True))
    changed = (plain != outlined).any(2)
    assert changed.any() and (outlined[changed] == OUTLINE_RGB).all()
    mask = result.lungs.mask
    from scipy import ndimage

    border = ndimage.binary_dilation(mask, iterations=3) & ~ndimage.binary_erosion(mask, iterations=3)
    assert border[changed].all()  # nothing drawn away from the border


def test_a_crop_model_is_fed_the_lungs_and_its_heatmap_lines_up_with_the_image(crop_weights, real_scans):
    model = fresh("resnet18", crop_weights)
    scan = covidnet.read_scan(real_scans[1])
    result = model.analyze(scan)
    box = widen(result.lungs.box, 0.1, scan.image.size)
    assert box != (0, 0, *scan.image.size)
    x, geometry, _ = model.prepare(scan)
    assert geometry.box == box
    crop_only = build_transform(replace(model.meta, crop=None))(scan.image.crop(box))
    torch.testing.assert_close(x, crop_only)  # the crop, then the usual preprocessing
    left, top, right, bottom = box
    outside = np.ones(result.heatmap.shape, dtype=bool)
    outside[top:bottom, left:right] = False
    assert result.heatmap.shape == (scan.image.height, scan.image.width)
    assert result.heatmap[outside].max() == 0 and result.heatmap[~outside].max() > 0
    assert not any(w.code == WarningCode.NOT_CROPPED for w in result.warnings)


def test_a_crop_model_sees_the_whole_image_when_no_lungs_are_found_and_says_so(crop_weights):
    model = fresh("resnet18", crop_weights)
    scan = _scan(np.tile(np.linspace(0, 255, 300, dtype=np.uint8), (200, 1)))
    result = model.analyze(scan)
    assert not result.lungs.plausible and result.heatmap_in_lungs is None
    assert model.prepare(scan)[1].box == (0, 0, 300, 200)
    assert WarningCode.NOT_CROPPED in [w.code for w in result.warnings]


def test_a_crop_model_needs_the_segmenter_it_was_trained_with(crop_weights, tmp_path):
    model, meta = load_checkpoint("resnet18", crop_weights)
    with pytest.raises(CheckpointError, match="no lung segmenter"):
        Predictor.of(model, meta)
    other = replace(meta, crop=replace(meta.crop, segmenter_sha256="0" * 64))
    with pytest.raises(CheckpointError, match="another lung segmenter"):
        Predictor.of(model, other, segmenter=load_segmenter())
    assert read_checkpoint_metadata(crop_weights / "resnet18.json").crop.to == "lungs"


def _lungs(checks: LungQuality) -> LungMask:
    quality = checks.product
    mask = np.zeros((64, 64), dtype=bool)
    return LungMask(mask, 0.0, None, quality, quality >= 0.5, checks=checks)


def test_the_gate_says_no_lung_fields_found_or_lateral_view():
    xray = _scan(np.tile(np.linspace(0, 255, 256, dtype=np.uint8), (256, 1)))
    base = LungQuality(confidence=0.9, area=1.0, balance=1.0, layout=1.0, shape=1.0, clutter=1.0)
    one_field = _lungs(replace(base, balance=0.0, layout=0.0, shape=0.0))
    nothing = _lungs(replace(base, confidence=0.1, area=0.0, balance=0.0))
    frontal = _lungs(base)
    warnings = Gate().check([xray] * 3, None, [one_field, nothing, frontal])
    assert [w.code for w in warnings[0]] == [WarningCode.LATERAL_VIEW] and "frontal" in warnings[0][0].message
    assert [w.code for w in warnings[1]] == [WarningCode.NOT_CHEST_XRAY]
    assert "No lung fields found" in warnings[1][0].message
    assert warnings[2] == [] and looks_lateral(one_field) and not looks_lateral(frontal)
    assert Gate().check([xray], None, None) == [[]]  # not segmented: no lung check


def test_a_lateral_view_counts_as_flagged(weights_dir, real_scans):
    result = fresh("resnet18", weights_dir).analyze(real_scans[0], cam=None)
    lateral = covidnet.ScanWarning(WarningCode.LATERAL_VIEW, "side view")
    assert not result.flagged and replace(result, warnings=[lateral]).flagged


def test_two_lungs_joined_above_the_heart_are_judged_as_two():
    labels = np.zeros((20, 20), dtype=int)
    labels[4:18, 2:8] = 1  # right lung
    labels[4:18, 12:18] = 1  # left lung
    labels[2:4, 2:18] = 1  # joined by a thin bridge over the mediastinum
    split, count = split_joined_lungs(labels, np.bincount(labels.ravel())[1:])
    assert count == 2 and set(np.unique(split[4:18, 2:8])) == {1} and set(np.unique(split[4:18, 12:18])) == {2}
    blob = np.zeros((20, 20), dtype=int)
    blob[3:18, 4:16] = 1  # one field without a waist, as a lateral view would show
    assert split_joined_lungs(blob, np.bincount(blob.ravel())[1:])[1] == 1


def test_occlusion_masks_follow_the_lung_mask():
    image = Image.new("L", (40, 20), 200)
    lungs = np.zeros((20, 40), dtype=bool)
    lungs[5:15, 5:15] = True
    hidden, kept = np.asarray(mask_lungs(image, lungs)), np.asarray(mask_outside_lungs(image, lungs))
    assert (hidden[lungs] == 0).all() and (hidden[~lungs] == 200).all()
    assert (kept[lungs] == 200).all() and (kept[~lungs] == 0).all()


def test_heatmap_in_lungs_is_summarised_per_class():
    summary = heatmap_in_lungs_summary([0.2, 0.6, 0.8, 0.4], [0.3, 0.3, 0.3, 0.2], ["covid", "covid", "normal", "x"])
    assert summary["all"]["n"] == 4 and summary["all"]["median"] == pytest.approx(0.5)
    assert summary["all"]["share_above_half"] == 0.5 and summary["covid"]["median"] == pytest.approx(0.4)
    assert summary["normal"]["share_above_half"] == 1.0 and summary["all"]["lung_area_median"] == pytest.approx(0.3)


def test_the_saliency_check_randomises_a_crop_model_and_keeps_feeding_it_crops(crop_weights, real_scans):
    model = fresh("resnet18", crop_weights)
    result = saliency_sanity(model, [covidnet.read_scan(real_scans[1])])
    assert result["n"] == 1 and -1 <= result["median_spearman"] <= 1
