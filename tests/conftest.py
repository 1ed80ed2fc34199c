"""Shared fixtures: small temporary checkpoints for every backbone, and real scans from ../shared."""

from __future__ import annotations

import csv
import os
import re
import shutil
from pathlib import Path

import pytest
import torch

import covidnet
from covidnet.lungs.checkpoint import lungs_paths
from covidnet.models.checkpoints import save_checkpoint
from covidnet.models.registry import build_model, get_spec

CXR_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "cxr"
TEST_INPUT_SIZE = 128  # small inputs keep the suite fast; the real input sizes are in the registry
SHIPPED = Path(__file__).resolve().parents[1] / "weights"
# An absolute path inside a longer text ("split 'val' of /work/main/weights/split.csv"), not a URL's or a fraction's.
ABSOLUTE_INSIDE = re.compile(r"(?<![\w.):/])/[A-Za-z_][\w.-]*/")


def absolute_paths(value) -> list[str]:
    """Every string in a JSON value (keys too) that is or holds an absolute path of this machine's kind."""
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in absolute_paths(k) + absolute_paths(v)]
    if isinstance(value, list):
        return [s for v in value for s in absolute_paths(v)]
    if isinstance(value, str) and (os.path.isabs(value) or ABSOLUTE_INSIDE.search(value)):
        return [value]
    return []


def lively(model: torch.nn.Module, head: str) -> torch.nn.Module:
    """``model`` as initialised, unless its activations vanish in eval mode with batch norm's default statistics
    (torchvision's MobileNetV2: every input then gives the same logits and a zero heatmap, as no trained network
    does). Then its batch norms get the statistics of a few noise batches, as training would give them, and its
    head (linear layer ``head``) is scaled so that logits differ by units, as a trained network's do (Grad-CAM++
    weighs gradients by their squares and cubes: with logits a hundredth apart its heatmap is all zero)."""
    probe = torch.randn(2, 3, TEST_INPUT_SIZE, TEST_INPUT_SIZE)
    with torch.no_grad():
        first, second = model.eval()(probe)
        if torch.allclose(first, second, atol=1e-3):
            model.train()
            for _ in range(10):
                model(torch.randn(8, 3, TEST_INPUT_SIZE, TEST_INPUT_SIZE))
            model.get_submodule(head).weight.div_(model.eval()(probe).std())
    return model.eval()


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder with a randomly initialised (seeded) checkpoint for every backbone, and the shipped lung
    segmenter."""
    folder = tmp_path_factory.mktemp("weights")
    for name in covidnet.backbones():
        torch.manual_seed(0)
        save_checkpoint(
            lively(build_model(name), get_spec(name).head), backbone=name, input_size=TEST_INPUT_SIZE, out_dir=folder
        )
    for path in lungs_paths(SHIPPED):
        shutil.copy(path, folder)
    return folder


def shared_cxr() -> Path:
    """The shared chest X-ray set's folder (``../shared/data/cxr``); where it is absent, the calling test or fixture
    is skipped with that reason."""
    if not (CXR_ROOT / "metadata.csv").exists():
        pytest.skip(f"the shared chest X-ray set is not at {CXR_ROOT}")
    return CXR_ROOT


@pytest.fixture(scope="session")
def real_scans() -> list[Path]:
    """One real scan per class from the shared chest X-ray set (skipped where it is absent)."""
    chosen: dict[str, Path] = {}
    with (shared_cxr() / "metadata.csv").open() as f:
        for row in csv.DictReader(f):
            chosen.setdefault(row["label"], CXR_ROOT / row["path"])
    return [chosen[label] for label in covidnet.CLASSES]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium for the browser tests: skipped where it is missing, a failure in CI."""
    from app_server import CHROMIUM

    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: .ci/run installs it")
        pytest.skip("Chromium is not installed (apt-get install -y chromium chromium-driver)")
    return CHROMIUM
