"""Prediction and Grad-CAM on real scans with small seeded checkpoints of every backbone."""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
import torch
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
from pytorch_grad_cam.utils.image import scale_cam_image, show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

import covidnet
from covidnet.classes import CLASSES
from covidnet.inference.drawing import overlay
from covidnet.inference.feature_gate import FeatureGate, StageExtractor
from covidnet.inference.gate import Gate
from covidnet.inference.predictor import Predictor
from covidnet.models.checkpoints import load_checkpoint
from covidnet.models.registry import build_model, cam_layer, get_spec, head

BACKBONES = covidnet.backbones()


@pytest.fixture(scope="module")
def scans(real_scans):
    return [covidnet.read_scan(path) for path in real_scans]


def probabilities_of(model: Predictor, scans: list[covidnet.Scan]) -> list[dict[str, float]]:
    """Calibrated probabilities from one plain forward pass over the batch (no heatmap, no checks)."""
    return model.classifier.probabilities(model.forward(scans).logits)


@pytest.mark.parametrize("name", BACKBONES)
def test_predict_returns_probabilities_that_sum_to_one(name, weights_dir, scans):
    model = covidnet.load(name, weights_dir=weights_dir)
    for scan in scans:
        probabilities = model.analyze(scan, cam=None).probabilities
        assert list(probabilities) == list(CLASSES)
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        assert all(0.0 <= p <= 1.0 for p in probabilities.values())


def test_load_is_cached_per_backbone(weights_dir):
    """Each ``load`` composes a predictor of the parts loaded once: the network and the segmenter are shared."""
    first, second = (covidnet.load("resnet18", weights_dir=weights_dir) for _ in range(2))
    assert first.classifier.network is second.classifier.network
    assert first.segmenter is not None and first.segmenter is second.segmenter


def test_batch_equals_one_at_a_time(weights_dir, scans):
    model = covidnet.load("resnet18", weights_dir=weights_dir)
    batched = probabilities_of(model, scans)
    for scan, row in zip(scans, batched, strict=True):
        assert row == pytest.approx(probabilities_of(model, [scan])[0], abs=1e-5)
        assert row == pytest.approx(model.analyze(scan, cam=None).probabilities, abs=1e-5)


def test_temperature_from_the_card_is_applied(weights_dir, scans):
    shared = covidnet.load("resnet18", weights_dir=weights_dir)
    model, meta = load_checkpoint("resnet18", weights_dir)
    hot = Predictor.of(model, dataclasses.replace(meta, temperature=4.0))
    x = shared.prepare(scans[0]).tensor.unsqueeze(0)
    with torch.inference_mode():
        logits = shared.classifier.network.module(x)[0]
    expected = torch.softmax(logits / 4.0, dim=0)
    hot_probabilities = hot.analyze(scans[0], cam=None).probabilities
    assert list(hot_probabilities.values()) == pytest.approx(expected.tolist(), abs=1e-6)
    assert max(hot_probabilities.values()) < max(shared.analyze(scans[0], cam=None).probabilities.values())


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("cam", covidnet.cam_methods())
def test_analyze_gives_a_heatmap_the_size_of_the_scan(name, cam, weights_dir, scans):
    model = covidnet.load(name, weights_dir=weights_dir)
    scan = scans[0]
    result = model.analyze(scan, cam=cam)
    width, height = scan.image.size
    assert result.heatmap.shape == (height, width) and result.heatmap.dtype == np.float32
    assert not np.isnan(result.heatmap).any()
    assert result.heatmap.min() >= 0.0 and result.heatmap.max() <= 1.0 and result.heatmap.max() > 0.5
    drawn = result.overlay()
    assert drawn.size == scan.image.size and drawn.mode == "RGB"
    assert result.cam == cam and result.prediction == max(result.probabilities, key=result.probabilities.get)
    assert result.probabilities == pytest.approx(model.analyze(scan, cam=None).probabilities, abs=1e-5)
    assert result.seconds > 0


@pytest.mark.parametrize("name", BACKBONES)
def test_heatmap_changes_with_the_target_class(name, weights_dir, scans):
    model = covidnet.load(name, weights_dir=weights_dir)
    results = [model.analyze(scans[1], target=label) for label in CLASSES]
    assert [r.target for r in results] == list(CLASSES)
    maps = [r.heatmap for r in results]
    assert not np.allclose(maps[0], maps[1], atol=1e-3) or not np.allclose(maps[1], maps[2], atol=1e-3)


GRAD_CAM_PACKAGE = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "eigencam": EigenCAM,
}


def test_every_cam_method_is_checked_against_the_package():
    assert set(GRAD_CAM_PACKAGE) == set(covidnet.cam_methods())


@pytest.mark.parametrize("method", list(GRAD_CAM_PACKAGE))
@pytest.mark.parametrize("name", BACKBONES)
def test_heatmap_equals_the_grad_cam_package_on_an_unmodified_model(name, method, weights_dir, scans):
    """Our formulas and the cheap backward (frozen weights, gradient from the explained layer on) give what
    pytorch_grad_cam gives on a plain copy of the model, brought to its 128-pixel output the way it does."""
    shared = covidnet.load(name, weights_dir=weights_dir)
    plain = build_model(name).eval()
    plain.load_state_dict(shared.classifier.network.module.state_dict())
    x = shared.prepare(scans[2]).tensor.unsqueeze(0)
    for label in CLASSES:
        target = [ClassifierOutputTarget(CLASSES.index(label))]
        with GRAD_CAM_PACKAGE[method](plain, [cam_layer(plain, get_spec(name))]) as cam:
            expected = cam(input_tensor=x, targets=target)[0]
        ours = shared.analyze(scans[2], cam=method, target=label)
        assert ours.grid.shape == (8, 8)
        assert np.allclose(scale_cam_image([cv2.resize(ours.grid, x.shape[-2:][::-1])])[0], expected, atol=1e-4)


def test_overlay_draws_what_the_grad_cam_package_draws(scans):
    image = scans[0].image
    heatmap = np.linspace(0, 1, image.width * image.height, dtype=np.float32).reshape(image.height, image.width)
    for opacity in (0.0, 0.4, 1.0):
        base = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
        expected = show_cam_on_image(base, heatmap, use_rgb=True, image_weight=1 - opacity)
        ours = np.asarray(overlay(image, heatmap, opacity=opacity), dtype=np.int16)
        assert np.abs(ours - expected).max() <= 2


def test_unknown_cam_method_and_target_are_refused(weights_dir, scans):
    model = covidnet.load("resnet18", weights_dir=weights_dir)
    with pytest.raises(covidnet.UnknownCamMethodError, match="gradcam"):
        model.analyze(scans[0], cam="magic")
    with pytest.raises(covidnet.CovidNetError, match="covid"):
        model.analyze(scans[0], target="flu")


def test_analyze_accepts_a_path_and_reports_reading_warnings(weights_dir, real_scans, tmp_path):
    from PIL import Image

    frames = [Image.open(real_scans[0]).convert("L"), Image.new("L", (320, 320))]
    path = tmp_path / "two_frames.tif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    result = covidnet.load("resnet18", weights_dir=weights_dir).analyze(path)
    assert result.warnings[0].code == covidnet.WarningCode.FIRST_FRAME  # reading's warnings come first
    assert not result.flagged
    assert result.to_dict()["warnings"][0] == {
        "code": "first_frame",
        "message": result.warnings[0].message,
        "details": {"frames": 2},
    }


@pytest.mark.slow
def test_concurrent_calls_on_shared_models_equal_a_sequential_run(weights_dir, scans):
    """8 threads × every scan × every backbone, analyze and a plain forward pass mixed, on the shared models."""
    jobs = [(name, i, kind) for name in BACKBONES for i in range(len(scans)) for kind in ("analyze", "forward")]

    def run(job):
        name, i, kind = job
        model = covidnet.load(name, weights_dir=weights_dir)
        if kind == "forward":
            return probabilities_of(model, [scans[i]])[0], None
        result = model.analyze(scans[i], cam="gradcam++" if i % 2 else "gradcam")
        return result.probabilities, result.heatmap

    sequential = [run(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(run, jobs * 2))
    for expected, got in zip(sequential * 2, concurrent, strict=True):
        assert got[0] == expected[0]
        if expected[1] is not None:
            assert np.array_equal(got[1], expected[1])


RESNET18_GATE = FeatureGate(  # unit statistics of resnet18's layer1..layer3 (mean and std of 64, 128, 256 channels)
    tuple(torch.zeros(w, dtype=torch.float64) for w in (128, 256, 512)),
    tuple(torch.eye(w, dtype=torch.float64) for w in (128, 256, 512)),
    (1.0, 1.0, 1.0),
    1e9,
)


def no_forward_hooks(module: torch.nn.Module) -> bool:
    return not any(m._forward_hooks for m in module.modules())


@pytest.mark.parametrize("name", BACKBONES)
def test_gate_stages_equal_a_full_pass_and_skip_the_rest_of_the_network(name, weights_dir, scans):
    shared = covidnet.load(name, weights_dir=weights_dir)
    network = shared.classifier.network
    stages = StageExtractor(network, get_spec(name).gate_layers, name)
    # A gate fitted on this network: its stages are recorded during the full pass (the pass does not score them).
    model = Predictor(shared.classifier, Gate(FeatureGate((), (), (), 0.0), stages))
    x = torch.stack([model.prepare(s).tensor for s in scans])
    full = model.forward(scans).stages
    heads = []
    hook = head(network.module, get_spec(name)).register_forward_hook(lambda *_: heads.append(1))
    try:
        early = model.gate.stages.extract(x)
    finally:
        hook.remove()
    assert heads == []
    assert len(early) == len(full) == len(get_spec(name).gate_layers)
    assert all(torch.equal(a, b) for a, b in zip(early, full, strict=True))
    assert no_forward_hooks(network.module)  # the stages' hooks lived for their pass only
    with torch.inference_mode():  # a plain pass after a gate-only one runs to the end
        assert network.module(x).shape == (len(scans), len(covidnet.CLASSES))


def test_the_predictor_takes_its_model_over_and_leaves_no_hooks_after_a_pass(weights_dir, scans):
    model, meta = load_checkpoint("resnet18", weights_dir)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    predictor = Predictor.of(model, meta, features=RESNET18_GATE)
    network = predictor.classifier.network
    assert network.module is model and predictor.gate.stages.network is network  # one network, one lock
    assert not model.training and not any(p.requires_grad for p in model.parameters())  # frozen, in eval mode
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert no_forward_hooks(model)
    for cam in ("gradcam", "eigencam", None):  # explained layer, head and gate stages hooked for the pass only
        assert predictor.analyze(scans[0], cam=cam).warnings == []
        assert no_forward_hooks(model)
    assert len(predictor.forward(scans[:2]).stages) == len(get_spec("resnet18").gate_layers)
    assert no_forward_hooks(model)


def test_an_analysis_serialises_once_for_every_consumer(weights_dir, scans):
    result = covidnet.load("resnet18", weights_dir=weights_dir).analyze(scans[0], cam=None)
    record = result.to_dict()
    assert set(record) == {
        "backbone", "probabilities", "prediction", "uncertain", "flagged", "heatmap_in_lungs", "unfamiliarity", "lungs",
        "warnings",
    }  # fmt: skip
    assert record["uncertain"] == (max(result.probabilities.values()) < result.uncertainty_threshold)
    assert json.loads(json.dumps(record)) == record


def test_the_ensemble_averages_its_members(weights_dir, scans):
    members = [covidnet.load(name, weights_dir=weights_dir).analyze(scans[0], cam=None) for name in BACKBONES]
    combined = covidnet.ensemble(members)
    for c in covidnet.CLASSES:
        assert combined.probabilities[c] == pytest.approx(sum(m.probabilities[c] for m in members) / len(members))
    assert combined.agree == (len({m.prediction for m in members}) == 1)
    with pytest.raises(covidnet.CovidNetError):
        covidnet.ensemble([])


def test_an_ensemble_serialises_as_an_analysis_and_has_no_class_when_any_member_is_refused(weights_dir, scans):
    members = [covidnet.load(name, weights_dir=weights_dir).analyze(scans[0], cam=None) for name in BACKBONES[:2]]
    first_frame = covidnet.ScanWarning(covidnet.WarningCode.FIRST_FRAME, "first frame only")
    outside = covidnet.ScanWarning(covidnet.WarningCode.HEATMAP_OUTSIDE_LUNGS, "outside")
    members = [dataclasses.replace(members[0], warnings=[first_frame, outside]),
               dataclasses.replace(members[1], warnings=[first_frame])]  # fmt: skip
    record = covidnet.ensemble(members).to_dict()
    assert list(record) == list(members[0].to_dict())
    assert record["backbone"] == "ensemble" and record["heatmap_in_lungs"] is None
    assert record["prediction"] == max(record["probabilities"], key=record["probabilities"].get)
    assert record["uncertain"] == (max(record["probabilities"].values()) < 0.5)
    assert [w["code"] for w in record["warnings"]] == ["first_frame"]  # what every member says
    lateral = covidnet.ScanWarning(covidnet.WarningCode.LATERAL_VIEW, "side view")
    refused = covidnet.ensemble([members[0], dataclasses.replace(members[1], warnings=[first_frame, lateral])])
    record = refused.to_dict()
    assert record["prediction"] is None and record["uncertain"] is None and record["flagged"] == "lateral_view"
    assert [w["code"] for w in record["warnings"]] == ["lateral_view", "first_frame"]
    alone = dataclasses.replace(members[1], warnings=[lateral]).to_dict()
    assert (alone["prediction"], alone["uncertain"], alone["flagged"]) == (None, None, "lateral_view")
