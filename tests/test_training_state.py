"""The resumable training state both training loops save (``covidnet.models.training_state``): a restored run
continues identically, and a crash while saving leaves the previous state whole."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from covidnet.models import training_state
from covidnet.models.training_state import load_training_state, restore_training_state, save_training_state


def _run(model: nn.Module, optimizer: torch.optim.Optimizer, rng: torch.Generator, steps: int) -> list[float]:
    """A few optimiser steps drawing from every random source a training loop uses."""
    losses = []
    for _ in range(steps):
        x = torch.randn(4, 3, generator=rng) + torch.rand(1) + random.random()
        loss = model(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _fresh(seed: int) -> tuple[nn.Module, torch.optim.Optimizer, torch.Generator]:
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    return model, torch.optim.AdamW(model.parameters(), lr=0.1), torch.Generator().manual_seed(seed)


def test_a_run_restored_from_its_state_continues_identically(tmp_path):
    model, optimizer, rng = _fresh(0)
    random.seed(0)
    _run(model, optimizer, rng, 3)
    path = tmp_path / "runs" / "net.state.pt"
    save_training_state(path, {"epoch": 3, "history": [{"epoch": 3}]}, model=model, optimizer=optimizer, rng=rng)
    expected = _run(model, optimizer, rng, 3)

    model2, optimizer2, rng2 = _fresh(1)  # other weights and random states, all replaced by the restore
    random.seed(1)
    state = load_training_state(path)
    restore_training_state(state, model=model2, optimizer=optimizer2, rng=rng2)
    assert state["epoch"] == 3 and state["history"] == [{"epoch": 3}]
    assert _run(model2, optimizer2, rng2, 3) == expected
    weights, restored = model.state_dict().values(), model2.state_dict().values()
    assert all(torch.equal(a, b) for a, b in zip(weights, restored, strict=True))
    assert [p.name for p in path.parent.iterdir()] == ["net.state.pt"]  # no temporary file left


def test_a_crash_while_saving_leaves_the_previous_state_intact(tmp_path, monkeypatch):
    model, optimizer, rng = _fresh(0)
    path = tmp_path / "net.state.pt"
    save_training_state(path, {"epoch": 1}, model=model, optimizer=optimizer, rng=rng)
    before = path.read_bytes()

    def crash(obj, f, *args, **kwargs):
        f.write(b"half a state")
        raise OSError("disk full")

    monkeypatch.setattr(training_state.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_training_state(path, {"epoch": 2}, model=model, optimizer=optimizer, rng=rng)
    assert path.read_bytes() == before
    assert load_training_state(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["net.state.pt"]


def test_a_state_written_by_the_earlier_savers_still_restores(tmp_path):
    """The loops saved their states with a plain ``torch.save`` of the same keys before sharing this module."""
    model, optimizer, rng = _fresh(0)
    old = {
        "epoch": 2,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "shuffle": rng.get_state(), "python": random.getstate()},
    }
    torch.save(old, tmp_path / "old.state.pt")
    model2, optimizer2, rng2 = _fresh(1)
    restore_training_state(load_training_state(tmp_path / "old.state.pt"), model=model2, optimizer=optimizer2, rng=rng2)
    assert torch.equal(model2.weight, model.weight) and torch.equal(rng2.get_state(), rng.get_state())
