"""``covidnet predict --engine ray`` against a local Ray that the test starts (2 CPUs): the rows equal the local
engine's. Ray runs in a child process with a time limit, so a stalled job fails the test instead of hanging CI."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image
from test_cli import covidnet_cli

import covidnet
from covidnet.scoring.ray_engine import pool_size

ROOT = Path(__file__).resolve().parents[1]
RAY_TIMEOUT = 300  # seconds; the job takes about 30 s on 2 CPUs
DRIVER = """
import sys, ray
ray.init(num_cpus=2, include_dashboard=False)
from covidnet.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def ray_installed() -> None:
    if importlib.util.find_spec("ray") is None:
        pytest.fail('Ray is missing: requirements-dev.txt installs it (pip install "covidnet[ray]")')


def run_with_ray(*args: str | Path, timeout: float = RAY_TIMEOUT) -> subprocess.CompletedProcess:
    """The CLI in a child process that starts a local 2-CPU Ray first; killed with its Ray processes on timeout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-c", DRIVER, *map(str, args)]
    process = subprocess.Popen(command, env=env, cwd=ROOT, text=True, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"the Ray job did not finish within {timeout} s")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def sorted_rows(out: Path) -> list[dict]:
    return sorted(pq.read_table(out).to_pylist(), key=lambda r: (r["scan"], r["backbone"] or ""))


@pytest.mark.slow
def test_the_ray_engine_writes_the_rows_of_the_local_engine(ray_installed, weights_dir, real_scans, tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    for path in real_scans:
        shutil.copy(path, scans / path.name)
    Image.new("RGB", (200, 200), (200, 40, 40)).save(scans / "photo.png")  # the gate flags it
    (scans / "broken.png").write_bytes(b"not a png")
    listing = tmp_path / "listing.csv"
    listing.write_text("path\n" + "".join(f"scans/{p.name}\n" for p in sorted(scans.iterdir())))
    local, distributed = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    common = ["predict", listing, "--backbone", "all", "--batch-size", "2"]
    assert covidnet_cli(*common, "--out", local, weights=weights_dir).returncode == 1
    result = run_with_ray("--weights-dir", weights_dir, *common, "--engine", "ray", "--out", distributed)
    assert result.returncode == 1, result.stderr[-3000:]  # the broken file
    rows, expected = sorted_rows(distributed), sorted_rows(local)
    assert len(rows) == 4 * (len(covidnet.backbones()) + 1) + 1 and sum(r["error"] is not None for r in rows) == 1
    for row, want in zip(rows, expected, strict=True):
        assert row == pytest.approx(want, abs=1e-5)


def test_the_actor_pool_leaves_the_read_tasks_a_cpu():
    assert pool_size(2) == (2, 0.5)  # 2 actors × 1 CPU on a 2-CPU Ray starved the reads and never finished
    assert pool_size(2, 1) == (1, 1.0)
    assert pool_size(1) == (2, 0.25)
    assert pool_size(16) == (15, 1.0)
    assert pool_size(64, 8) == (8, 63 / 8)
