"""Training settings a person got wrong reach the command line as a message and a non-zero exit, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import shared_cxr

from covidnet.cli import main
from covidnet.errors import CovidNetError, TrainingSetupError
from covidnet.training.augmentation import augmentation
from covidnet.training.train import TrainConfig, train

SPLIT = Path(__file__).resolve().parents[1] / "weights" / "split.csv"


def _train_args(tmp_path: Path, data: Path, *extra: str) -> list[str]:
    paths = ["--out", str(tmp_path / "out"), "--state-dir", str(tmp_path / "runs")]
    return ["train", "--backbone", "resnet18", "--data", str(data), "--split-file", str(SPLIT), *paths, *extra]


def test_training_on_data_without_images_prints_what_to_check_and_fails(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "metadata.csv").write_text("path,label,sha256\n")
    assert main(_train_args(tmp_path, data)) != 0
    err = capsys.readouterr().err
    assert err.startswith("covidnet: No train images:") and "--split-file" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_holding_out_a_source_that_matches_nothing_prints_the_known_sources_and_fails(tmp_path, capsys):
    assert main(_train_args(tmp_path, shared_cxr(), "--holdout", "no-such-source")) != 0
    err = capsys.readouterr().err
    assert err.startswith("covidnet: no scans from source 'no-such-source'; known: ") and "Traceback" not in err


def test_an_unknown_augmentation_is_a_training_setup_error():
    with pytest.raises(TrainingSetupError, match="unknown augmentation 'mixup'"):
        augmentation("mixup")


def test_an_unknown_crop_is_a_covidnet_error(tmp_path):
    config = TrainConfig("resnet18", shared_cxr(), SPLIT, tmp_path, crop="ribs")
    with pytest.raises(CovidNetError, match="unknown crop 'ribs'; choose none or lungs"):
        train(config)
