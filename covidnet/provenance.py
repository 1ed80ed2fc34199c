"""What makes a training run reproducible and traceable: seeding every generator, the code's commit, and paths
recorded relative to the repository (never the absolute paths of the machine that wrote them)."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import numpy as np
import torch

PACKAGE = Path(__file__).resolve().parent
REPOSITORY = PACKAGE.parent


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's random generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def git_commit() -> str:
    """The commit of the covidnet package's code, "-dirty" when it has uncommitted changes, else "unknown"."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=PACKAGE
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], capture_output=True, text=True, cwd=PACKAGE)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty.stdout.strip() else "")


def recorded_path(path: str | os.PathLike) -> str:
    """``path`` as metadata and reports record it: relative to the repository, e.g. ``weights/split.csv`` or
    ``../shared/data/cxr`` (a relative ``path`` is taken from the working directory)."""
    return Path(os.path.relpath(os.path.abspath(path), REPOSITORY)).as_posix()
