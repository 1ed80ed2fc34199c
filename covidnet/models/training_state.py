"""A training run's resumable state (``<state-dir>/<name>.state.pt``), shared by every training loop: saved
atomically after each epoch and restored so that a resumed run continues exactly where the last one stopped.

A state is one dict: the loop's own entries (epoch, best so far, history, …) next to ``"model"``, ``"optimizer"``
and ``"rng"`` (torch's global, the loop's shuffling generator and Python's ``random``). It is written atomically
(``artifacts.save_tensors``: a temporary file in the same folder, then ``os.replace``), so a crash while saving
leaves the previous state whole; it is read back with ``weights_only=True``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from torch import nn

from covidnet.models.artifacts import save_tensors


def save_training_state(
    path: Path, entries: dict[str, Any], *, model: nn.Module, optimizer: torch.optim.Optimizer, rng: torch.Generator
) -> None:
    """Write ``entries`` with the model's, the optimizer's and the random states to ``path``, atomically."""
    state = {
        **entries,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "shuffle": rng.get_state(), "python": random.getstate()},
    }
    save_tensors(state, path)


def load_training_state(path: Path) -> dict[str, Any]:
    """The state saved at ``path`` (tensors on the CPU; nothing but tensors and plain data is unpickled)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def restore_training_state(
    state: dict[str, Any], *, model: nn.Module, optimizer: torch.optim.Optimizer, rng: torch.Generator
) -> None:
    """Put the model's, the optimizer's and the random states of ``state`` back in place."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"]["torch"])
    rng.set_state(state["rng"]["shuffle"])
    random.setstate(state["rng"]["python"])
