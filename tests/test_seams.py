"""The seams of the inference core, each used the way a contributor would: a backbone added by one registry entry,
an explanation method that needs the model and the input (one class implementing ``Explainer``), another lung
segmenter (one class implementing ``Segmenter``), and another class list (the task record travels with the
weights)."""

from __future__ import annotations

import ast
import dataclasses
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

import covidnet
from covidnet.classes import Task
from covidnet.errors import CheckpointError
from covidnet.inference.classifier import Classifier
from covidnet.inference.drawing import mass_inside
from covidnet.inference.network import Network
from covidnet.inference.predictor import Predictor, load_classifier
from covidnet.io.preprocessing import build_transform, widen
from covidnet.lungs.segment import LungMask
from covidnet.models import registry
from covidnet.models.checkpoints import save_checkpoint
from covidnet.models.metadata import CheckpointMetadata, LungCrop


class Occlusion:
    """A method that needs the model and the input: the drop of the target score when each cell of a 4 × 4 grid of
    the input is blanked."""

    name = "occlusion"
    needs_gradients = False
    cells = 4

    @contextmanager
    def watch(self, classifier: Classifier, batch: torch.Tensor):
        def heatmaps(logits: torch.Tensor, targets: torch.Tensor) -> list[np.ndarray]:
            side = batch.shape[-1] // self.cells
            grids = []
            for k, target in enumerate(targets.tolist()):
                grid = np.zeros((self.cells, self.cells), dtype=np.float32)
                for i in range(self.cells):
                    for j in range(self.cells):
                        blanked = batch[k : k + 1].clone()
                        blanked[..., i * side : (i + 1) * side, j * side : (j + 1) * side] = 0
                        grid[i, j] = float(logits[k, target] - classifier.network.module(blanked)[0, target])
                grids.append(np.clip(grid, 0, None) / (grid.max() + 1e-7))
            return grids

        yield heatmaps


class MiddleBox:
    """A segmenter that says the lungs are the middle of the image."""

    sha256 = "b" * 64

    def segment_batch(self, images, *, mapper=map) -> list[LungMask]:
        masks = []
        for image in images:
            width, height = image.size
            box = (width // 8, height // 4, 7 * width // 8, 3 * height // 4)
            mask = np.zeros((height, width), dtype=bool)
            mask[box[1] : box[3], box[0] : box[2]] = True
            masks.append(LungMask(mask=mask, area_fraction=float(mask.mean()), box=box, quality=1.0, plausible=True))
        return masks


def test_an_explainer_that_needs_the_model_and_the_input_is_one_class(weights_dir, real_scans):
    model = covidnet.load("resnet18", weights_dir=weights_dir)
    occluded = model.analyze(real_scans[0], cam=Occlusion())
    plain = model.analyze(real_scans[0], cam=None)
    assert occluded.cam == "occlusion" and occluded.grid.shape == (4, 4)
    assert occluded.heatmap.shape == (occluded.image.height, occluded.image.width) and occluded.grid.max() > 0
    assert occluded.probabilities == pytest.approx(plain.probabilities, abs=1e-6)


def test_another_segmenter_is_one_class_and_a_crop_checkpoint_names_the_one_it_needs(weights_dir, real_scans):
    scan = covidnet.read_scan(real_scans[1])
    classifier = load_classifier("resnet18", weights_dir)
    result = Predictor(classifier, segmenter=MiddleBox()).analyze(scan)
    assert result.lungs.box == MiddleBox().segment_batch([scan.image])[0].box
    assert result.heatmap_in_lungs == pytest.approx(mass_inside(result.heatmap, result.lungs.mask))

    cropping = dataclasses.replace(classifier.meta, crop=LungCrop(margin=0.1, segmenter_sha256=MiddleBox.sha256))
    predictor = Predictor(Classifier(classifier.network, cropping), segmenter=MiddleBox())
    box = widen(MiddleBox().segment_batch([scan.image])[0].box, 0.1, scan.image.size)
    assert torch.equal(
        predictor.prepare(scan).tensor, build_transform(dataclasses.replace(cropping, crop=None))(scan.image.crop(box))
    )
    with pytest.raises(CheckpointError, match="another lung segmenter"):
        Predictor(
            Classifier(classifier.network, dataclasses.replace(cropping, crop=LungCrop(0.1, "c" * 64))),
            segmenter=MiddleBox(),
        )


def test_a_backbone_is_one_registry_entry(monkeypatch, tmp_path, real_scans):
    spec = dataclasses.replace(registry.get_spec("resnet18"), name="resnet34", builder="resnet34", shipped=False)
    monkeypatch.setitem(registry.BACKBONES, "resnet34", spec)
    torch.manual_seed(0)
    save_checkpoint(registry.build_model("resnet34"), backbone="resnet34", input_size=128, out_dir=tmp_path)
    result = covidnet.load("resnet34", weights_dir=tmp_path).analyze(real_scans[2])
    assert result.backbone == "resnet34" and result.grid.shape == (8, 8)
    assert sum(result.probabilities.values()) == pytest.approx(1.0)


def test_another_class_list_is_the_task_record_and_a_head_of_its_size(real_scans):
    task = Task(
        classes=("covid", "normal", "pneumonia", "tuberculosis"),
        display_names={"covid": "COVID-19", "normal": "Normal", "pneumonia": "Pneumonia", "tuberculosis": "TB"},
    )
    torch.manual_seed(0)
    model = registry.build_model("resnet18", num_classes=len(task.classes))
    meta = CheckpointMetadata("resnet18", "resnet18", 128, "", 0, 0, task=task)
    result = Predictor(Classifier(Network.own(model), meta)).analyze(real_scans[0])
    assert list(result.probabilities) == list(task.classes) and task.display_name("tuberculosis") == "TB"
    assert CheckpointMetadata.from_dict(dataclasses.asdict(meta)).task == task


def test_no_module_but_the_task_record_spells_a_class_name():
    root = Path(__file__).resolve().parents[1]
    files = [*(root / "covidnet").rglob("*.py"), *(root / "pages").glob("*.py"), root / "ui.py", root / "app.py"]
    spelled = [
        f"{path.relative_to(root)}:{node.lineno}"
        for path in files
        if path.name != "classes.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in covidnet.TASK.classes
    ]
    assert len(files) > 50 and spelled == []


def test_an_ensemble_refuses_backbones_trained_on_different_classes(weights_dir, real_scans):
    task = dataclasses.replace(covidnet.TASK, classes=("covid", "normal", "pneumonia", "tuberculosis"))
    torch.manual_seed(0)
    model = registry.build_model("resnet18", num_classes=len(task.classes))
    four = Predictor(
        Classifier(Network.own(model), CheckpointMetadata("resnet18", "resnet18", 128, "", 0, 0, task=task))
    )
    three = covidnet.load("resnet18", weights_dir=weights_dir)
    with pytest.raises(covidnet.CovidNetError, match="same classes"):
        covidnet.ensemble([four.analyze(real_scans[0], cam=None), three.analyze(real_scans[0], cam=None)])
