"""`covidnet train` end to end on a small slice of the real data (a few seconds per run)."""

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHIPPED, shared_cxr
from PIL import Image

import covidnet
from covidnet.assessment.report_files import find_leave_one_out_report, write_leave_one_out_report
from covidnet.assessment.report_schema import LEAVE_ONE_OUT_REPORT
from covidnet.data.records import read_metadata
from covidnet.data.splits import read_split_file
from covidnet.experiments.leave_one_out import leave_one_source_out, multi_label_sources
from covidnet.io.preprocessing import build_transform
from covidnet.lungs.checkpoint import lungs_paths
from covidnet.models.checkpoints import verify_checkpoint
from covidnet.training.augmentation import xray_augmentation
from covidnet.training.train import TrainConfig, train

SPLIT = Path(__file__).resolve().parents[1] / "weights" / "split.csv"


def config(tmp_path: Path, **changes) -> TrainConfig:
    settings = dict(backbone="resnet18", data=shared_cxr(), split_file=SPLIT, out=tmp_path / "weights", epochs=1,
                    input_size=64, limit=30, workers=0, state_dir=tmp_path / "runs", batch_size=16)  # fmt: skip
    return TrainConfig(**{**settings, **changes})


@pytest.mark.slow
def test_training_writes_a_verified_checkpoint_with_a_complete_card(tmp_path):
    meta = train(config(tmp_path), command="covidnet train --backbone resnet18")
    assert verify_checkpoint("resnet18", tmp_path / "weights") == meta
    assert meta.init == "scratch" and meta.input_size == 64 and meta.command.startswith("covidnet train")
    assert 0.05 <= meta.temperature <= 20 and meta.commit
    validation = meta.metrics["validation"]
    assert {"macro_auc", "accuracy", "ece_before_temperature", "ece_after_temperature"} <= set(validation)
    assert sum(meta.training.train_images.values()) > 50 and meta.training.history[0]["epoch"] == 1
    model = covidnet.load("resnet18", weights_dir=tmp_path / "weights")
    assert model.meta.input_size == 64


@pytest.mark.slow
def test_same_seed_gives_the_same_weights_and_an_interrupted_run_resumes_exactly(tmp_path, monkeypatch):
    uninterrupted = train(config(tmp_path / "a", epochs=2))
    assert train(config(tmp_path / "b", epochs=2)).sha256 == uninterrupted.sha256  # deterministic on the CPU

    import covidnet.training.train as training

    original, calls = training.collect_logits, []

    def interrupt_in_epoch_two(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "collect_logits", interrupt_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path / "c", epochs=2))
    monkeypatch.setattr(training, "collect_logits", original)
    state = torch.load(next((tmp_path / "c").rglob("resnet18.state.pt")), weights_only=True)
    resumed = train(config(tmp_path / "c", epochs=2, resume=True))
    assert [h["epoch"] for h in resumed.training.history] == [1, 2]
    assert resumed.sha256 == uninterrupted.sha256
    assert resumed.training.seconds > state["seconds"] > 0  # the time before the interruption counts


@pytest.mark.slow
def test_training_against_source_shortcuts_records_every_choice_and_its_model_is_fed_the_same(tmp_path):
    meta = train(config(tmp_path, crop="lungs", intensity="equalize", augment="source-cues", balance="source-label",
                        adversary=0.3, holdout=("covid-cxnet",)))  # fmt: skip
    assert meta.intensity == "equalize" and meta.crop.to == "lungs"
    settings = meta.training.settings
    assert (settings["augment"], settings["balance"], settings["adversary"]) == ("source-cues", "source-label", 0.3)
    assert meta.training.held_out_sources == ["covid-cxnet (armiro/COVID-CXNet)"]
    assert not any("covid-cxnet" in source for source in meta.training.sources)
    assert 0 <= meta.training.history[0]["adversary_source_accuracy"] <= 1
    for path in lungs_paths(SHIPPED):
        shutil.copy(path, tmp_path / "weights")
    model = covidnet.load("resnet18", weights_dir=tmp_path / "weights")
    scan = covidnet.read_scan(next((shared_cxr() / "images").rglob("*.jpg")))
    box = model.segmenter.segment_batch([scan.image])[0].box
    expected = build_transform(meta)(scan.image, box)  # the recorded crop and equalisation, no augmentation
    assert torch.equal(model.prepare(scan).tensor, expected)


@pytest.mark.slow
def test_leave_one_source_out_trains_without_the_source_and_measures_on_all_of_it(tmp_path):
    root = shared_cxr()
    rows = list(csv.DictReader((root / "metadata.csv").open()))[::100]  # a small slice of every source
    for row in rows:
        row["path"] = str(root / row["path"])
    subset = tmp_path / "data" / "metadata.csv"
    subset.parent.mkdir()
    with subset.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    template = config(tmp_path, data=subset.parent, limit=None)
    report = leave_one_source_out(template, tmp_path / "rounds", sources=["nih-chestxray8"])
    (source,) = report.sources.values()
    assert not any(name.startswith("nih-chestxray8") for name in source.trained_on) and source.trained_on
    pool = [r for r in rows if r["dataset"] == "nih-chestxray8" and r["sha256"] in in_pool(SPLIT)]
    assert source.left_out.n == len(pool) and source.left_out.class_counts["covid"] == 0
    assert source.left_out.sensitivity["covid"] is None and 0 <= source.left_out.macro_auc <= 1
    assert 0 <= source.validation_macro_auc <= 1 and 0 <= source.internal_test_macro_auc <= 1
    trained = [r for r in rows if r["dataset"] != "nih-chestxray8" and r["sha256"] in in_pool(SPLIT, "train")]
    assert sum(source.train_images.values()) == len(trained)
    write_leave_one_out_report(report, tmp_path / "reports" / f"{LEAVE_ONE_OUT_REPORT}.json")
    assert find_leave_one_out_report(tmp_path / "reports") == report
    assert multi_label_sources(read_metadata(subset)) == ["covid19-radiography-db", "ieee8023", "kermany",
                                                          "nih-chestxray8"]  # fmt: skip


def in_pool(split_file: Path, *parts: str) -> set[str]:
    """The sha256 of every image of the split file's ``parts`` (default: train, val and test)."""
    parts = parts or ("train", "val", "test")
    return {sha for sha, entry in read_split_file(split_file).items() if entry.split in parts}


def test_augmentation_keeps_a_greyscale_radiograph_greyscale_and_its_size():
    image = Image.fromarray(np.tile(np.linspace(0, 255, 200), (160, 1)).astype(np.uint8))
    torch.manual_seed(0)
    augmented = xray_augmentation()(image)
    assert augmented.mode == "L" and augmented.size == image.size
    assert not np.array_equal(np.asarray(augmented), np.asarray(image))
