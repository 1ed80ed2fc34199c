"""The chest X-ray gate: colour and blank checks, the feature-distance gate, and its wiring."""

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import covidnet
from covidnet.inference.feature_gate import FeatureGate, fit_gate, load_gate, mahalanobis, save_gate
from covidnet.inference.gate import Gate
from covidnet.inference.predictor import Predictor
from covidnet.models.checkpoints import load_checkpoint
from covidnet.models.registry import shipped_backbones
from covidnet.notices import WarningCode


def scan_of(image: Image.Image) -> covidnet.Scan:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return covidnet.read_scan(buffer.getvalue(), name="x.png")


def test_a_colour_picture_is_flagged_with_a_reason():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    [warnings] = Gate().check([scan_of(Image.fromarray(pixels))])
    assert [w.code for w in warnings] == [WarningCode.NOT_CHEST_XRAY] and "colour" in warnings[0].message
    assert warnings[0].details["check"] == "colour" and warnings[0].details["coloured_share"] > 0.5


def test_a_blank_image_is_flagged_and_a_real_xray_is_not(real_scans):
    assert "blank" in Gate().check([scan_of(Image.new("L", (300, 300), 128))])[0][0].message
    assert Gate().check([covidnet.read_scan(path) for path in real_scans]) == [[]] * len(real_scans)


def test_gate_passes_the_chosen_share_of_validation_images_and_flags_outliers():
    rng = np.random.default_rng(0)
    train = [rng.normal(size=(2000, 8)).astype(np.float32), rng.normal(size=(2000, 4)).astype(np.float32)]
    val = [rng.normal(size=(1000, 8)).astype(np.float32), rng.normal(size=(1000, 4)).astype(np.float32)]
    gate = fit_gate(train, val, quantile=0.95)
    passed = gate.score([torch.from_numpy(v) for v in val]) <= gate.threshold
    assert passed.double().mean() == pytest.approx(0.95, abs=0.002)
    outlier_in_second_stage = [torch.zeros(1, 8), torch.full((1, 4), 6.0)]
    assert gate.score(outlier_in_second_stage)[0] > gate.threshold
    assert gate.score([torch.zeros(1, 8), torch.zeros(1, 4)])[0] < gate.threshold


def test_gate_file_is_verified_before_loading(tmp_path):
    rng = np.random.default_rng(1)
    gate = fit_gate([rng.normal(size=(200, 4))], [rng.normal(size=(100, 4))])
    path = tmp_path / "g.pt"
    sha = save_gate(gate, path)
    loaded = load_gate(path, sha)
    probe = [torch.from_numpy(rng.normal(size=(5, 4)))]
    assert torch.allclose(loaded.score(probe), gate.score(probe), rtol=1e-5)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(covidnet.CheckpointError, match="sha256"):
        load_gate(path, sha)


def test_analyze_reports_the_gate_from_the_same_pass(weights_dir, real_scans):
    model, meta = load_checkpoint("resnet18", weights_dir)
    widths = [128, 256, 512]  # mean and std of resnet18's layer1..layer3 channels
    gate = FeatureGate(
        tuple(torch.zeros(w, dtype=torch.float64) for w in widths),
        tuple(torch.eye(w, dtype=torch.float64) for w in widths),
        (1.0, 1.0, 1.0),
        -1.0,
    )
    closed = Predictor.of(model, meta, features=gate)
    opened = dataclasses.replace(
        closed, gate=dataclasses.replace(closed.gate, features=dataclasses.replace(gate, threshold=1e9))
    )
    for cam in ("gradcam", None):
        flagged = closed.analyze(real_scans[0], cam=cam)
        assert flagged.flagged and "frontal chest X-ray" in flagged.warnings[0].message
        assert flagged.warnings[0].details["score"] > flagged.warnings[0].details["limit"] == -1.0
        assert opened.analyze(real_scans[0], cam=cam).warnings == []
    unexplained = closed.analyze(real_scans[0], cam=None)
    assert unexplained.heatmap is None and unexplained.overlay() is None


def test_the_non_xray_corpus_has_150_readable_images_of_every_kind(tmp_path):
    from gate_corpus import write_corpus

    from covidnet.cli.gate import read_corpus  # what `covidnet gate-report --corpus DIR` reads

    written = write_corpus(tmp_path)
    corpus = read_corpus(tmp_path)
    assert len(corpus) == written >= 150
    kinds = {kind for kind, _, _ in corpus}
    assert {"colour photo", "greyscale photo", "text document", "drawing", "gradient", "noise", "blank"} <= kinds
    assert all(min(scan.image.size) >= 64 for _, _, scan in corpus)


SHIPPED = Path(__file__).resolve().parents[1] / "weights"


@pytest.mark.slow
@pytest.mark.parametrize("name", shipped_backbones())  # every shipped model has a gate; missing weights fail
def test_shipped_gates_flag_non_xrays_and_pass_real_test_xrays(name):
    from conftest import shared_cxr
    from gate_corpus import non_xray_scans

    from covidnet.data.records import read_metadata
    from covidnet.data.splits import split_records

    metadata = shared_cxr() / "metadata.csv"
    model = covidnet.load(name, weights_dir=SHIPPED)
    corpus = non_xray_scans()
    flagged = sum(model.analyze(s, cam=None).flagged for _, _, s in corpus)
    assert flagged / len(corpus) >= 0.95
    test = split_records(read_metadata(metadata), SHIPPED / "split.csv")["test"][::4]
    real = sum(model.analyze(r.path, cam=None).flagged for r in test)
    assert real / len(test) <= 0.02


def test_a_backbone_can_use_another_backbones_gate(weights_dir, real_scans, tmp_path):
    """The gate belongs to the input, so densenet121 may be screened by resnet18's stages."""
    import shutil

    from covidnet.models.checkpoints import checkpoint_paths
    from covidnet.models.metadata import GateRecord, read_checkpoint_metadata
    from covidnet.training.gate_fitting import share_gate

    for name in ("resnet18", "densenet121"):
        for path in checkpoint_paths(name, weights_dir):
            shutil.copy(path, tmp_path / path.name)
    widths = [128, 256, 512]  # resnet18's layer1..layer3, mean and std
    closed = FeatureGate(
        tuple(torch.zeros(w, dtype=torch.float64) for w in widths),
        tuple(torch.eye(w, dtype=torch.float64) for w in widths),
        (1.0, 1.0, 1.0),
        -1.0,
    )
    sha = save_gate(closed, tmp_path / "resnet18.gate.pt")
    keeper = dataclasses.replace(
        read_checkpoint_metadata(checkpoint_paths("resnet18", tmp_path)[1]),
        gate=GateRecord(
            "resnet18.gate.pt", sha, -1.0, 0.99, "resnet18", ["layer1", "layer2", "layer3"], "", "", {}, 6.0
        ),
    )
    share_gate(keeper, "densenet121", tmp_path)
    densenet = covidnet.load("densenet121", weights_dir=tmp_path)
    resnet = covidnet.load("resnet18", weights_dir=tmp_path)
    assert densenet.gate.stages.backbone == "resnet18"
    assert densenet.gate.stages.network is resnet.classifier.network  # the loaded network is shared
    result = densenet.analyze(real_scans[0], cam=None)
    assert [w.code for w in result.warnings] == [WarningCode.NOT_CHEST_XRAY]
    assert len(densenet.forward([covidnet.read_scan(real_scans[1])]).stages) == len(widths)
    assert not any(m._forward_hooks for m in resnet.classifier.network.module.modules())


def test_mahalanobis_with_the_identity_is_the_euclidean_distance():
    stats = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    assert mahalanobis(stats, torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)).tolist() == [5, 0]


def test_fit_gate_fits_a_backbone_without_a_gate_from_its_own_stages(weights_dir, real_scans, tmp_path):
    """`covidnet fit-gate` on a tiny split of real scans: the gate file is written and recorded (it once failed
    because a predictor without a fitted gate recorded no stages)."""
    import csv
    import shutil

    from covidnet.cli import main
    from covidnet.models.artifacts import sha256_of
    from covidnet.models.checkpoints import checkpoint_paths
    from covidnet.models.metadata import read_checkpoint_metadata

    for path in checkpoint_paths("resnet18", weights_dir):
        shutil.copy(path, tmp_path / path.name)
    data = tmp_path / "data"
    data.mkdir()
    rows = []
    for k in range(12):  # each real scan turned by a few degrees: twelve different films
        path = data / f"scan{k}.png"
        Image.open(real_scans[k % len(real_scans)]).convert("L").rotate(k).save(path)
        rows.append({"path": path.name, "label": covidnet.CLASSES[k % 3], "sha256": sha256_of(path)})
    with (data / "metadata.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "label", "sha256"])
        writer.writeheader()
        writer.writerows(rows)
    with (tmp_path / "split.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sha256", "phash", "split", "round"])
        writer.writerows([r["sha256"], f"{k:016x}", "train" if k < 8 else "val", 1] for k, r in enumerate(rows))

    argv = ["--weights-dir", str(tmp_path), "fit-gate", "--backbone", "resnet18", "--data", str(data)]
    assert main([*argv, "--split-file", str(tmp_path / "split.csv")]) == 0

    meta = read_checkpoint_metadata(tmp_path / "resnet18.json")
    assert meta.gate is not None and meta.gate.backbone == "resnet18"
    assert "8 training images" in meta.gate.fitted_on and "4 validation images" in meta.gate.threshold_from
    assert sha256_of(tmp_path / meta.gate.file) == meta.gate.sha256
    assert covidnet.load("resnet18", weights_dir=tmp_path).gate.fitted
