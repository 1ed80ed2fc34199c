"""The lung segmenter: the shipped weights on real masks, the API's geometry and plausibility, the checkpoint's
sha256 check, and a tiny training run through the CLI (with resume)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import covidnet
from covidnet.cli import main
from covidnet.errors import CheckpointError, CovidNetError
from covidnet.lungs import LungMask, load_segmenter, segment_lungs
from covidnet.lungs.checkpoint import load_lungs_checkpoint, lungs_paths, verify_lungs_checkpoint
from covidnet.lungs.data import read_lung_records, read_mask
from covidnet.lungs.model import SOURCE_CONVENTION
from covidnet.models.artifacts import sha256_of

SHIPPED = Path(__file__).resolve().parents[1] / "weights"
LUNG_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lungs"


@pytest.fixture(scope="module")
def lung_records():
    if not (LUNG_DATA / "metadata.csv").exists():
        pytest.skip(f"the shared lung mask set is not at {LUNG_DATA}")
    return read_lung_records(LUNG_DATA)


@pytest.fixture(scope="module")
def held_out(lung_records):
    """Four validation images per source (the part of the split the segmenter was not trained on)."""
    split_file = SHIPPED / "lungs.split.csv"
    assert split_file.exists(), f"{split_file} is missing: the shipped segmenter's split must ship with it"
    with split_file.open(newline="") as f:
        val = {row["image"] for row in csv.DictReader(f) if row["split"] == "val"}
    chosen = []
    for source in SOURCE_CONVENTION:
        chosen += [r for r in lung_records if r.name in val and r.source == source][::7][:4]
    return chosen


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_shipped_segmenter_matches_held_out_masks(held_out):
    scores = []
    for record in held_out:
        lungs = segment_lungs(record.image, convention=SOURCE_CONVENTION[record.source], weights_dir=SHIPPED)
        scores.append(_dice(lungs.mask, read_mask(record.mask)))
        assert lungs.plausible, record.name
    assert min(scores) > 0.88 and np.mean(scores) > 0.93, [round(s, 3) for s in scores]


def test_the_mask_has_the_display_images_size_for_a_non_square_scan(lung_records):
    record = next(r for r in lung_records if r.source == "ieee8023v7" and Image.open(r.image).size[0] != 256)
    scan = covidnet.read_scan(record.image)
    width, height = scan.image.size
    assert width != height
    lungs = covidnet.segment_lungs(scan, weights_dir=SHIPPED)
    assert isinstance(lungs, LungMask) and lungs.mask.dtype == bool and lungs.mask.shape == (height, width)
    assert lungs.area_fraction == pytest.approx(lungs.mask.mean())
    left, top, right, bottom = lungs.box
    assert 0 <= left < right <= width and 0 <= top < bottom <= height
    assert lungs.mask[top:bottom, left:right].sum() == lungs.mask.sum()
    assert 0 <= lungs.quality <= 1 and lungs.plausible


def test_a_batch_with_a_thread_pool_finds_each_scans_lungs(held_out):
    from concurrent.futures import ThreadPoolExecutor

    segmenter = load_segmenter(SHIPPED)
    images = [covidnet.read_scan(r.image).image for r in held_out[:6]]
    with ThreadPoolExecutor(2) as pool:
        batched = segmenter.segment_batch(images, mapper=pool.map)
    for image, together in zip(images, batched, strict=True):
        alone = segmenter.segment(image)
        assert together.mask.shape == (image.height, image.width)
        assert np.mean(together.mask != alone.mask) < 1e-3
        assert together.quality == pytest.approx(alone.quality, abs=1e-3) and together.box is not None


@pytest.mark.parametrize("level", [0, 128, 255])
def test_a_uniform_image_is_not_plausible_lungs(level):
    lungs = segment_lungs(_png(Image.new("L", (300, 240), level)), weights_dir=SHIPPED)
    assert not lungs.plausible and lungs.quality < 0.5
    assert lungs.mask.shape == (240, 300)


def test_colour_photos_are_not_plausible_lungs():
    from sklearn.datasets import load_sample_images  # bundled with scikit-learn, no download

    for photo in load_sample_images().images:
        lungs = segment_lungs(_png(Image.fromarray(photo)), weights_dir=SHIPPED)
        assert not lungs.plausible, lungs.checks


def test_the_shipped_metadata_matches_its_file():
    pt_path, meta_path = lungs_paths(SHIPPED)
    meta = json.loads(meta_path.read_text())
    assert sha256_of(pt_path) == meta["sha256"] and pt_path.stat().st_size == meta["size_bytes"] <= 10 * 2**20
    assert verify_lungs_checkpoint(SHIPPED).sha256 == meta["sha256"] == load_segmenter(SHIPPED).sha256
    model, _ = load_lungs_checkpoint(SHIPPED)
    assert sum(p.numel() for p in model.parameters()) == meta["parameters"]
    validation = meta["metrics"]["validation"]
    assert {"ieee8023v7", "covidquex"} <= set(validation["dice_by_source"])
    assert meta["training"]["seconds"] > 0 and meta["commit"] and meta["command"].startswith("covidnet train-lungs")


def test_the_segmenter_is_loaded_once_per_process():
    assert load_segmenter(SHIPPED) is load_segmenter(SHIPPED)


def test_a_tampered_or_missing_file_is_refused(tmp_path):
    for path in lungs_paths(SHIPPED):
        shutil.copy(path, tmp_path / path.name)
    scan = _png(Image.new("L", (256, 256), 90))
    segment_lungs(scan, weights_dir=tmp_path)  # loads and caches the intact copy
    pt_path, _ = lungs_paths(tmp_path)
    data = bytearray(pt_path.read_bytes())
    data[-100] ^= 0xFF
    pt_path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        segment_lungs(scan, weights_dir=tmp_path)
    pt_path.unlink()
    with pytest.raises(CheckpointError, match="train-lungs"):
        segment_lungs(scan, weights_dir=tmp_path)


def test_an_unknown_convention_is_refused():
    with pytest.raises(CovidNetError, match="convention"):
        segment_lungs(_png(Image.new("L", (256, 256), 90)), convention="jsrt", weights_dir=SHIPPED)


def test_training_runs_resumes_and_writes_a_loadable_checkpoint(lung_records, tmp_path, capsys):
    """Two epochs on 16 images at 32 px: one run of 1 epoch, then a resumed run to 2."""
    picked = [r for s in SOURCE_CONVENTION for r in lung_records if r.source == s][::40][:20]
    data = tmp_path / "data"
    data.mkdir()
    with (data / "metadata.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "mask", "source", "original_image", "diagnosis"])
        for r in picked:
            writer.writerow([r.image.resolve(), r.mask.resolve(), r.source, r.original_image, r.diagnosis])
    common = ["train-lungs", "--data", str(data), "--input-size", "32", "--base", "4", "--batch-size", "8"]
    common += ["--limit", "16", "--state-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    assert main([*common, "--epochs", "1"]) == 0
    assert main([*common, "--epochs", "2", "--resume"]) == 0
    assert "resuming after epoch 1" in capsys.readouterr().out
    _, meta = load_lungs_checkpoint(tmp_path / "out")
    assert [h["epoch"] for h in meta.training["history"]] == [1, 2]
    assert meta.input_size == 32 and (tmp_path / "out" / "lungs.split.csv").exists()
    assert set(meta.metrics["validation"]["dice_by_source"]) <= set(SOURCE_CONVENTION)
