"""The ImageNet MobileNetV2 converted from Google's TensorFlow Lite files agrees with the LiteRT interpreter.

On each of the six test photos beside the files, with TensorFlow's "SAME" padding reproduced: the same top-1 class,
at least 4 of the same top-5, and pre-softmax logits correlated at 0.98 or more, for both classifier files. The
same check fails for a conversion with a wrong weight layout, a dropped bias or torchvision's symmetric padding, so
it can tell a right conversion from a wrong one. Skipped where ``../shared/pretrained`` is absent.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

import covidnet
from covidnet.models import pretrained
from covidnet.models.pretrained import TFLITE_FILES, converted_state, imagenet_start, pretrained_dir
from covidnet.models.registry import build_model, get_spec
from covidnet.models.tflite_import import IMAGENET_OUTPUTS, convert_mobilenet_v2, tensorflow_padding

FOLDER = pretrained_dir()
pytestmark = [
    pytest.mark.skipif(not FOLDER.is_dir(), reason=f"the pretrained networks are not at {FOLDER}"),
    pytest.mark.filterwarnings("ignore:Warning. Enabling `experimental_preserve_all_tensors`:UserWarning"),
]
PHOTOS = sorted((FOLDER / "test_images").glob("*")) if FOLDER.is_dir() else []


def photo_pixels(path) -> np.ndarray:
    """A photo as the interpreter takes it: 224×224 RGB, uint8, as is."""
    return np.asarray(Image.open(path).convert("RGB").resize((224, 224)), dtype=np.uint8)


def interpreter_logits(file: str) -> np.ndarray:
    """LiteRT's pre-softmax outputs (dequantised) for every photo: (photos, 1001)."""
    import tflite
    from ai_edge_litert.interpreter import Interpreter

    flatbuffer = tflite.Model.GetRootAsModel((FOLDER / file).read_bytes(), 0)
    graph = flatbuffer.Subgraphs(0)
    softmax = next(graph.Operators(i) for i in range(graph.OperatorsLength())
                   if graph.Operators(i).OutputsLength() and _is_softmax(flatbuffer, graph.Operators(i)))  # fmt: skip
    logits_index = softmax.Inputs(0)
    interpreter = Interpreter(model_path=str(FOLDER / file), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    scale, zero_point = next(t for t in interpreter.get_tensor_details() if t["index"] == logits_index)["quantization"]
    rows = []
    for photo in PHOTOS:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], photo_pixels(photo)[None])
        interpreter.invoke()
        rows.append((interpreter.get_tensor(logits_index).astype(np.float64).ravel() - zero_point) * scale)
    return np.stack(rows)


def _is_softmax(flatbuffer, op) -> bool:
    import tflite

    code = flatbuffer.OperatorCodes(op.OpcodeIndex())
    return tflite.opcode2name(max(code.BuiltinCode(), code.DeprecatedBuiltinCode())) == "SOFTMAX"


def torch_logits(state: dict[str, torch.Tensor], *, tensorflow_pads: bool = True) -> np.ndarray:
    model = torchvision.models.mobilenet_v2(weights=None, num_classes=IMAGENET_OUTPUTS).eval()
    model.load_state_dict(state)
    x = torch.stack([torch.from_numpy(photo_pixels(p).copy()).permute(2, 0, 1) for p in PHOTOS]).float() / 127.5 - 1
    with torch.inference_mode():
        if tensorflow_pads:
            with tensorflow_padding(model):
                return model(x).double().numpy()
        return model(x).double().numpy()


def agreement(ours: np.ndarray, reference: np.ndarray) -> list[tuple[float, bool, int]]:
    """Per photo: logits correlation, the same top-1 class, and the size of the top-5 overlap."""
    return [
        (
            float(np.corrcoef(a, b)[0, 1]),
            a.argmax() == b.argmax(),
            len(set(np.argsort(-a)[:5]) & set(np.argsort(-b)[:5])),
        )
        for a, b in zip(ours, reference, strict=True)
    ]


def agrees(rows: list[tuple[float, bool, int]]) -> bool:
    return all(corr >= 0.98 and same and overlap >= 4 for corr, same, overlap in rows)


@pytest.fixture(scope="module", params=sorted(TFLITE_FILES))
def converted(request):
    file = request.param
    return file, convert_mobilenet_v2(FOLDER / file), interpreter_logits(file)


def test_six_test_photos_are_there():
    assert len(PHOTOS) == 6


def test_converted_network_agrees_with_the_interpreter_on_every_photo(converted):
    _file, state, reference = converted
    rows = agreement(torch_logits(state), reference)
    assert agrees(rows), rows
    labels = (FOLDER / "imagenet_labels.txt").read_text().splitlines()
    named = {p.name: labels[int(r.argmax())].split(",")[0] for p, r in zip(PHOTOS, reference, strict=True)}
    assert named["cat_720p.jpg"] == "Egyptian cat" and named["hot_dog.jpg"] == "hotdog"


def test_the_check_fails_a_wrong_layout_a_dropped_bias_and_symmetric_padding(converted):
    _file, state, reference = converted
    swapped = {k: v.transpose(2, 3).contiguous() if v.ndim == 4 and v.shape[-1] == 3 else v for k, v in state.items()}
    no_bias = {k: torch.zeros_like(v) if k.endswith(".bias") and not k.startswith("classifier") else v
               for k, v in state.items()}  # fmt: skip
    assert not agrees(agreement(torch_logits(swapped), reference))
    assert not agrees(agreement(torch_logits(no_bias), reference))
    assert not agrees(agreement(torch_logits(state, tensorflow_pads=False), reference))


def test_imagenet_init_converts_once_caches_verified_and_records_the_source(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no torchvision weights: the conversion is used
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path / "cache"))
    start = imagenet_start(get_spec("mobilenet_v2"))
    assert start.record.source == "tflite" and start.record.sha256 == TFLITE_FILES[start.record.file]
    assert start.normalisation == {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    assert "converted from Google's TensorFlow Lite tf2_mobilenet_v2_1.0_224_ptq.tflite" in start.description
    cached = next((tmp_path / "cache").glob("*.pt"))
    assert json.loads(cached.with_suffix(".json").read_text())["sha256"] == start.record.converted_sha256

    cached.write_bytes(cached.read_bytes()[:-8] + b"tampered")  # a damaged cache is converted again, not loaded
    state, record = converted_state(FOLDER / start.record.file)
    assert record == start.record
    assert all(torch.equal(v, start.model.state_dict()[k]) for k, v in state.items())

    model = build_model("mobilenet_v2", init="imagenet")
    assert model.classifier[1].out_features == 3
    assert torch.equal(model.features[0][0].weight, start.model.features[0][0].weight)


def test_a_tflite_file_that_is_not_the_known_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    fake = tmp_path / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
    real = (FOLDER / fake.name).read_bytes()
    fake.write_bytes(real[:-1] + bytes([real[-1] ^ 1]))  # one bit changed
    monkeypatch.setenv(pretrained.PRETRAINED_ENV, str(tmp_path))
    with pytest.raises(covidnet.CovidNetError, match="not the file CovidNet knows"):
        build_model("mobilenet_v2", init="imagenet")
    fake.unlink()
    with pytest.raises(covidnet.CovidNetError, match="--init scratch"):
        build_model("mobilenet_v2", init="imagenet")


def test_fine_tuning_starts_from_the_pretrained_network(tmp_path, monkeypatch):
    """In training mode batch norm divides by the batch's statistics: with the batch norms restored, the converted
    network still computes what the interpreter does; with bare identity batch norms it computes nothing like it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path / "cache"))
    start = imagenet_start(get_spec("mobilenet_v2"))
    bare = torchvision.models.mobilenet_v2(weights=None, num_classes=IMAGENET_OUTPUTS)
    bare.load_state_dict(convert_mobilenet_v2(FOLDER / start.record.file))
    x = torch.stack([torch.from_numpy(photo_pixels(p).copy()).permute(2, 0, 1) for p in PHOTOS]).float() / 127.5 - 1
    x = torch.cat([x, x.flip(-1)])  # the batch the statistics were measured on
    with torch.no_grad():
        inference, bare_inference = start.model.eval()(x).numpy(), bare.eval()(x).numpy()
        for model in (start.model, bare):
            model.features.train()  # batch norm on batch statistics; the head's dropout stays off
        training, bare_training = start.model(x).numpy(), bare(x).numpy()
    assert np.abs(inference - bare_inference).max() < 1e-3 * np.abs(inference).max()  # the same network
    assert all(corr > 0.99 for corr, _, _ in agreement(training, inference))
    assert all(corr < 0.5 for corr, _, _ in agreement(bare_training, bare_inference))
