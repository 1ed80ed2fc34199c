"""What makes a training run reproducible and traceable: seeding every generator, and the code's commit."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import numpy as np
import torch

PACKAGE = Path(__file__).resolve().parent


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
