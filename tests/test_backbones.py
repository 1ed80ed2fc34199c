from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

import covidnet
from covidnet.classes import CLASSES
from covidnet.io.samples import samples
from covidnet.models.artifacts import sha256_of
from covidnet.models.checkpoints import save_checkpoint
from covidnet.models.metadata import Pretrained
from covidnet.models.pretrained import imagenet_start
from covidnet.models.registry import (
    BACKBONES,
    BackboneSpec,
    build_model,
    cam_layer,
    get_spec,
    head,
    shipped_backbones,
)


def test_backbones_lists_every_family():
    names = covidnet.backbones()
    assert names == list(BACKBONES)
    assert {get_spec(n).family for n in names} >= {"ResNet", "DenseNet", "VGG"}
    assert set(shipped_backbones()) <= set(names)


def test_unknown_backbone_lists_valid_names_and_suggests_one():
    with pytest.raises(covidnet.UnknownBackboneError) as excinfo:
        get_spec("resnet19")
    message = str(excinfo.value)
    assert all(name in message for name in covidnet.backbones())
    assert "Did you mean 'resnet18'" in message


@pytest.mark.parametrize("name", list(BACKBONES))
def test_head_has_one_output_per_class(name):
    model = build_model(name).eval()
    assert isinstance(head(model, get_spec(name)), nn.Linear)
    assert head(model, get_spec(name)).out_features == len(CLASSES)
    with torch.inference_mode():
        logits = model(torch.zeros(1, 3, 96, 96))
    assert logits.shape == (1, len(CLASSES))


@pytest.mark.parametrize("name", list(BACKBONES))
def test_cam_grid_is_at_least_8x8_at_the_default_input_size(name):
    spec = get_spec(name)
    model = build_model(name).eval()
    seen = {}
    cam_layer(model, spec).register_forward_hook(lambda _m, _i, out: seen.update(shape=out.shape))
    with torch.inference_mode():
        model(torch.zeros(1, 3, spec.input_size, spec.input_size))
    assert min(seen["shape"][-2:]) >= 8


@pytest.mark.parametrize("name", list(BACKBONES))
def test_empty_init_allocates_nothing_and_has_the_trained_layout(name):
    empty = build_model(name, init="empty").state_dict()
    built = build_model(name).state_dict()
    assert all(t.is_meta for t in empty.values())
    assert {k: v.shape for k, v in empty.items()} == {k: v.shape for k, v in built.items()}
    assert list(empty) == list(built)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_imagenet_init_loads_torchvisions_cached_file_offline(name, tmp_path, monkeypatch):
    """The --init imagenet path, exercised with a file this test writes into a private TORCH_HOME: every
    tensor but the replaced head comes from that file, and nothing is downloaded."""
    spec = get_spec(name)
    weights = torchvision.models.get_weight(spec.imagenet_weights)
    torch.manual_seed(1)
    reference = torchvision.models.get_model(spec.builder, weights=None).state_dict()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference, cache / Path(weights.url).name)  # the exact file name torchvision looks for
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail(f"download of {a}"))

    model = build_model(name, init="imagenet")

    head_keys = {f"{spec.head}.weight", f"{spec.head}.bias"}
    body = {k: v for k, v in model.state_dict().items() if k not in head_keys}
    assert body and all(torch.equal(v, reference[k]) for k, v in body.items())
    assert head(model, spec).out_features == len(CLASSES)
    assert list(model.state_dict())[-1] == f"{spec.head}.bias"
    start = imagenet_start(spec)  # what a training run records: this file, and ImageNet's mean and std
    file = cache / Path(weights.url).name
    assert start.record == Pretrained("torchvision", file.name, sha256_of(file), weights=spec.imagenet_weights)
    assert start.normalisation["mean"] == (0.485, 0.456, 0.406)


def test_imagenet_init_without_cached_weights_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(covidnet.CovidNetError, match="--init scratch"):
        build_model("resnet18", init="imagenet")


# A backbone with no weights shipped, added the way the README says: one entry and one small head function.
def _reset_efficientnet_head(model: nn.Module, num_classes: int) -> None:
    """``classifier`` is Sequential(Dropout, Linear): the linear layer is replaced, the dropout kept."""
    model.classifier[-1] = nn.Linear(model.classifier[-1].in_features, num_classes)


EFFICIENTNET_B0 = BackboneSpec(
    name="efficientnet_b0",
    family="EfficientNet",
    builder="efficientnet_b0",
    reset_head=_reset_efficientnet_head,
    head="classifier.1",
    cam_layer="features.5",  # the last stage at 1/16 of the input (features.6 halves it again)
    input_size=128,
    imagenet_weights="EfficientNet_B0_Weights.IMAGENET1K_V1",
    gate_layers=("features.2", "features.3", "features.4"),  # 1/4, 1/8 and 1/16 of the input
    shipped=False,
)


def test_adding_a_backbone_is_one_registry_entry(monkeypatch, tmp_path):
    monkeypatch.setitem(BACKBONES, EFFICIENTNET_B0.name, EFFICIENTNET_B0)
    assert EFFICIENTNET_B0.name in covidnet.backbones() and EFFICIENTNET_B0.name not in shipped_backbones()
    torch.manual_seed(0)
    save_checkpoint(build_model(EFFICIENTNET_B0.name), backbone=EFFICIENTNET_B0.name, input_size=128, out_dir=tmp_path)
    assert covidnet.trained_backbones(tmp_path) == [EFFICIENTNET_B0.name]

    model = covidnet.load(EFFICIENTNET_B0.name, weights_dir=tmp_path)
    scan = covidnet.read_scan(samples()[0].path)
    for cam in covidnet.cam_methods():
        analysis = model.analyze(scan, cam=cam)
        assert sum(analysis.probabilities.values()) == pytest.approx(1.0)
        assert analysis.heatmap.shape == (scan.image.height, scan.image.width), cam
        assert analysis.grid.shape == (128 // 16, 128 // 16), cam
        assert np.isfinite(analysis.grid).all() and np.isfinite(analysis.heatmap).all(), cam


def test_how_training_started_is_read_from_the_metadata_never_assumed():
    from covidnet.models.metadata import CheckpointMetadata
    from covidnet.models.pretrained import how_started

    def meta(name: str, init: str, pretrained: Pretrained | None = None) -> CheckpointMetadata:
        return CheckpointMetadata(name, name, 128, "", 0, 0, init=init, pretrained=pretrained)

    record = Pretrained("tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite", "5d3137241276e79c86")
    sentence = how_started([meta("resnet18", "scratch"), meta("vgg11_bn", "scratch"),
                            meta("mobilenet_v2", "imagenet", record)])  # fmt: skip
    assert sentence.startswith("resnet18 and vgg11_bn were trained from scratch; mobilenet_v2 was fine-tuned from")
    assert "converted from Google's TensorFlow Lite tf2_mobilenet_v2_1.0_224_ptq.tflite, sha256 5d3137241276…" in (
        sentence
    )
    assert "from scratch" not in how_started([meta("mobilenet_v2", "imagenet", record)])


def test_how_many_images_each_model_learned_from_is_read_from_its_training_record():
    from dataclasses import replace

    from covidnet.models.metadata import CheckpointMetadata, TrainingRecord, training_images

    def meta(name: str, counts: list[int] | None) -> CheckpointMetadata:
        plain = CheckpointMetadata(name, name, 128, "", 0, 0)
        if counts is None:
            return plain
        record = TrainingRecord("data", "", dict(zip(CLASSES, counts, strict=True)), {}, [], {}, 1, [], 1.0, "", "")
        return replace(plain, training=record)

    older, newer = [1452, 1976, 1920], [1452, 2254, 2600]
    sentence = training_images([meta("resnet18", older), meta("vgg11_bn", older), meta("mobilenet_v2", newer),
                                meta("untrained", None)])  # fmt: skip

    def words(counts: list[int]) -> str:
        return ", ".join(f"{n:,} {covidnet.display_name(c)}" for c, n in zip(CLASSES, counts, strict=True))

    assert sentence == (
        f"resnet18 and vgg11_bn learned from 5,348 training images ({words(older)}); "
        f"mobilenet_v2 from 6,306 ({words(newer)})"
    )
    assert "untrained" not in sentence and training_images([meta("untrained", None)]) == ""


def test_the_app_offers_the_backbone_measured_best_outside_first_where_it_is_installed():
    assert covidnet.default_backbone(["resnet18", "densenet121", "vgg11_bn", "mobilenet_v2"]) == "mobilenet_v2"
    assert covidnet.default_backbone(["densenet121", "vgg11_bn"]) == "densenet121"
