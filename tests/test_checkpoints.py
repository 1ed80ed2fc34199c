import json
import shutil
from pathlib import Path

import pytest
import torch

import covidnet
from covidnet.classes import CLASSES
from covidnet.lungs.checkpoint import lungs_paths
from covidnet.models.artifacts import sha256_of
from covidnet.models.checkpoints import (
    checkpoint_paths,
    count_parameters,
    load_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from covidnet.models.metadata import read_checkpoint_metadata
from covidnet.models.registry import build_model, get_spec, shipped_backbones

SHIPPED = Path(__file__).resolve().parents[1] / "weights"


def copy_checkpoint(backbone: str, source: Path, target: Path) -> None:
    target.mkdir(exist_ok=True)
    for path in checkpoint_paths(backbone, source):
        shutil.copy(path, target / path.name)


def test_round_trip_keeps_every_weight(tmp_path):
    torch.manual_seed(3)
    model = build_model("resnet18")
    meta = save_checkpoint(model, backbone="resnet18", input_size=128, out_dir=tmp_path, temperature=1.7)
    loaded, loaded_card = load_checkpoint("resnet18", tmp_path)
    assert loaded_card == meta and loaded_card.temperature == 1.7
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_float16_storage_halves_the_file_and_loads_as_float32(tmp_path):
    model = build_model("resnet18")
    full = save_checkpoint(model, backbone="resnet18", input_size=128, out_dir=tmp_path / "a")
    half = save_checkpoint(model, backbone="resnet18", input_size=128, out_dir=tmp_path / "b", dtype="float16")
    assert half.size_bytes < 0.55 * full.size_bytes
    loaded, _ = load_checkpoint("resnet18", tmp_path / "b")
    assert loaded.fc.weight.dtype == torch.float32
    assert torch.allclose(loaded.fc.weight, model.fc.weight, atol=1e-3)


def test_tampered_checkpoint_is_refused(weights_dir, tmp_path):
    copy_checkpoint("resnet18", weights_dir, tmp_path)
    pt_path, _ = checkpoint_paths("resnet18", tmp_path)
    data = bytearray(pt_path.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte, same size
    pt_path.write_bytes(bytes(data))
    with pytest.raises(covidnet.CheckpointError, match="sha256"):
        load_checkpoint("resnet18", tmp_path)
    with pytest.raises(covidnet.CheckpointError, match="sha256"):
        covidnet.load("resnet18", weights_dir=tmp_path)


def test_missing_weights_say_how_to_get_them(tmp_path):
    with pytest.raises(covidnet.CheckpointError, match="covidnet train --backbone vgg11_bn"):
        verify_checkpoint("vgg11_bn", tmp_path)


def test_card_for_another_backbone_is_refused(weights_dir, tmp_path):
    copy_checkpoint("resnet18", weights_dir, tmp_path)
    pt, meta = checkpoint_paths("resnet18", tmp_path)
    pt.rename(tmp_path / "densenet121.pt")
    meta.rename(tmp_path / "densenet121.json")
    with pytest.raises(covidnet.CheckpointError, match="describes 'resnet18'"):
        verify_checkpoint("densenet121", tmp_path)


def test_card_with_unknown_fields_is_refused(weights_dir, tmp_path):
    copy_checkpoint("resnet18", weights_dir, tmp_path)
    _, meta_path = checkpoint_paths("resnet18", tmp_path)
    record = json.loads(meta_path.read_text())
    record["acuracy"] = 0.99
    meta_path.write_text(json.dumps(record))
    with pytest.raises(covidnet.CheckpointError, match="acuracy"):
        verify_checkpoint("resnet18", tmp_path)


def test_loading_reads_tensors_only(weights_dir, tmp_path, monkeypatch):
    calls = []
    original = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or original(*a, **k))
    load_checkpoint("resnet18", weights_dir)
    assert calls and all(k.get("weights_only") is True for k in calls)


@pytest.mark.parametrize("name", shipped_backbones())
def test_every_shipped_card_matches_its_file_and_model(name):
    pt_path, meta_path = checkpoint_paths(name, SHIPPED)
    meta = read_checkpoint_metadata(meta_path)
    assert meta.backbone == name and meta.architecture == get_spec(name).builder
    assert pt_path.stat().st_size == meta.size_bytes < 50 * 2**20
    assert sha256_of(pt_path) == meta.sha256
    model, _ = load_checkpoint(name, SHIPPED)
    assert count_parameters(model) == meta.parameters
    assert tuple(meta.classes) == CLASSES
    assert list(model.state_dict().values())[-1].shape == (len(CLASSES),)
    assert meta.metrics, "a shipped checkpoint must carry its measured metrics"


def test_weights_ship_for_exactly_the_backbones_the_registry_says():
    """A missing .pt or .json fails here (and in every test parametrised by shipped_backbones), never skips."""
    assert shipped_backbones(), "the registry must name the backbones whose weights ship"
    for name in shipped_backbones():
        for path in checkpoint_paths(name, SHIPPED):
            assert path.is_file(), f"{name} ships weights, but {path} is missing"
    segmenter = lungs_paths(SHIPPED)[1]  # the lung segmenter's metadata, not a backbone's
    assert sorted(p.stem for p in SHIPPED.glob("*.json") if p != segmenter) == sorted(shipped_backbones())
    assert covidnet.trained_backbones(SHIPPED) == shipped_backbones()
