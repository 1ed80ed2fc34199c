from pathlib import Path

import pytest
import torch
import torchvision

import covidnet
from covidnet.classes import CLASSES
from covidnet.models.registry import BACKBONES, build_model, cam_layer, get_spec


def test_backbones_lists_every_family():
    names = covidnet.backbones()
    assert names == list(BACKBONES)
    assert {get_spec(n).family for n in names} >= {"ResNet", "DenseNet", "VGG"}


def test_unknown_backbone_lists_valid_names_and_suggests_one():
    with pytest.raises(covidnet.UnknownBackboneError) as excinfo:
        get_spec("resnet19")
    message = str(excinfo.value)
    assert all(name in message for name in covidnet.backbones())
    assert "Did you mean 'resnet18'" in message


@pytest.mark.parametrize("name", list(BACKBONES))
def test_head_has_one_output_per_class(name):
    model = build_model(name).eval()
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
def test_imagenet_init_loads_torchvisions_cached_file_offline(name, tmp_path, monkeypatch):
    """The --init imagenet path, exercised with a file this test writes into a private TORCH_HOME."""
    spec = get_spec(name)
    weights = torchvision.models.get_weight(spec.imagenet_weights)
    torch.manual_seed(1)
    reference = getattr(torchvision.models, spec.builder)(weights=None)
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference.state_dict(), cache / Path(weights.url).name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    model = build_model(name, init="imagenet")

    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    reference_conv = next(m for m in reference.modules() if isinstance(m, torch.nn.Conv2d))
    assert torch.equal(first_conv.weight, reference_conv.weight)
    assert list(model.state_dict())[-1].endswith("bias")
    assert model.state_dict()[list(model.state_dict())[-1]].shape == (len(CLASSES),)


def test_imagenet_init_without_cached_weights_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(covidnet.CovidNetError, match="--init scratch"):
        build_model("resnet18", init="imagenet")
