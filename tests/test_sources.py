"""Training against source shortcuts: (source, label)-balanced sampling, held-out sources, the gradient-reversal
adversary, histogram equalisation as a recorded preprocessing step, and augmentation against source looks."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from covidnet.data.records import Record
from covidnet.data.sources import MIN_GROUP, hold_out, sample_weights, source_index, training_films, without
from covidnet.errors import CheckpointError
from covidnet.io.preprocessing import build_transform, same_preprocessing
from covidnet.models.metadata import CheckpointMetadata
from covidnet.training.adversary import HeadInput, SourceAdversary, ramp, reverse_gradient
from covidnet.training.augmentation import BorderErasing, ResolutionJitter, source_cue_augmentation


def records(groups: dict[tuple[str, str], int]) -> list[Record]:
    return [
        Record(path=Path(f"{dataset}-{label}-{k}.png"), label=label, source=f"repo/{dataset}", dataset=dataset)
        for (dataset, label), count in groups.items()
        for k in range(count)
    ]


POOL = records({("a", "covid"): 400, ("b", "covid"): 100, ("b", "normal"): 300, ("c", "pneumonia"): 200,
                ("d", "pneumonia"): 60, ("e", "pneumonia"): 5})  # fmt: skip


def mass(weights: torch.Tensor, pool: list[Record], key) -> dict:
    totals: dict = defaultdict(float)
    for w, r in zip(weights.tolist(), pool, strict=True):
        totals[key(r)] += w
    return totals


def test_label_balance_draws_every_label_equally_often():
    by_label = mass(sample_weights(POOL, "label"), POOL, lambda r: r.label)
    assert by_label == pytest.approx({"covid": 1 / 3, "normal": 1 / 3, "pneumonia": 1 / 3})


def test_source_label_balance_draws_every_source_equally_within_a_label_and_damps_tiny_groups():
    weights = sample_weights(POOL, "source-label")
    by_label = mass(weights, POOL, lambda r: r.label)
    by_group = mass(weights, POOL, lambda r: (r.dataset, r.label))
    assert by_label["covid"] == pytest.approx(1 / 3) and by_label["normal"] == pytest.approx(1 / 3)
    assert by_group[("a", "covid")] == pytest.approx(by_group[("b", "covid")]) == pytest.approx(1 / 6)
    assert by_group[("c", "pneumonia")] == pytest.approx(by_group[("d", "pneumonia")]) == pytest.approx(1 / 9)
    assert by_group[("e", "pneumonia")] == pytest.approx(1 / 9 * 5 / MIN_GROUP)  # 5 scans are not drawn 40 times
    with pytest.raises(ValueError, match="unknown balancing"):
        sample_weights(POOL, "patient")


def test_holding_out_a_source_moves_it_from_training_into_validation():
    train, val = POOL[:700], POOL[700:]
    kept, validation = hold_out(train, val, ["b"])
    assert not any(r.dataset == "b" for r in kept)
    assert sorted(map(str, validation)) == sorted(map(str, [*val, *(r for r in train if r.dataset == "b")]))
    assert len(kept) + len(validation) == len(POOL)
    assert hold_out(train, val, ["repo/a"])[0] == [r for r in train if r.dataset != "a"]  # by repository too
    with pytest.raises(ValueError, match="no scans from source 'z'"):
        hold_out(train, val, ["z"])
    assert list(source_index(POOL)) == sorted({r.origin for r in POOL})


def test_a_runs_films_leave_out_excluded_sources_move_held_out_ones_and_keep_every_limit_th():
    parts = {"train": POOL[:700], "val": POOL[700:], "test": POOL[:10]}
    train, val = training_films(parts, exclude=["c"], holdout=["b"])
    assert {r.dataset for r in train} == {"a"}
    assert {r.dataset for r in val} == {"b", "d", "e"}  # b moved in, c left out of validation too
    assert len(train) + len(val) == len(without(POOL, ["c"]))
    halved = training_films(parts, exclude=["c"], holdout=["b"], limit=2)
    assert halved == (train[::2], val[::2])
    assert training_films({"train": POOL}) == (POOL, [])


def test_gradient_reversal_is_the_identity_forward_and_turns_the_gradient_around():
    x = torch.randn(4, 8, requires_grad=True)
    y = reverse_gradient(x, 0.3)
    assert torch.equal(y, x)
    (y * torch.arange(8.0)).sum().backward()
    assert torch.allclose(x.grad, -0.3 * torch.arange(8.0).expand(4, 8))
    assert ramp(0.0, 0.5) == 0.0 and 0.49 < ramp(1.0, 0.5) <= 0.5 and ramp(0.1, 0.5) < ramp(0.5, 0.5)


def test_the_adversary_reads_the_head_input_and_pushes_the_backbone_against_it():
    backbone = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    tap = HeadInput(backbone[2])
    adversary = SourceAdversary(5, sources=4)
    x, labels, sources = torch.randn(16, 6), torch.randint(0, 3, (16,)), torch.randint(0, 4, (16,))

    def first_layer_gradient(strength: float) -> torch.Tensor:
        backbone.zero_grad()
        backbone(x)
        loss = torch.nn.functional.cross_entropy(adversary(tap.features, labels, strength), sources)
        loss.backward()
        return backbone[0].weight.grad.clone()

    backbone(x)
    assert tap.features.shape == (16, 5)
    helping, opposing = first_layer_gradient(-1.0), first_layer_gradient(1.0)  # -1: plain backpropagation
    assert torch.allclose(opposing, -helping) and opposing.abs().sum() > 0
    tap.close()
    tap.features = None
    backbone(x)
    assert tap.features is None  # the hook is gone


def meta(intensity: str) -> CheckpointMetadata:
    return CheckpointMetadata(
        backbone="resnet18", architecture="resnet18", input_size=64, sha256="", size_bytes=0, parameters=0,
        intensity=intensity,
    )  # fmt: skip


def test_histogram_equalisation_is_a_recorded_step_that_removes_a_source_look():
    rng = np.random.default_rng(0)
    anatomy = rng.integers(0, 256, (80, 80)).astype(np.float32)
    dull = Image.fromarray((100 + anatomy * 0.2).astype(np.uint8))  # low contrast, e.g. another machine
    crisp = Image.fromarray(anatomy.astype(np.uint8))
    plain, equalised = build_transform(meta("none")), build_transform(meta("equalize"))
    assert not torch.allclose(plain(dull), plain(crisp), atol=0.5)
    assert torch.allclose(equalised(dull), equalised(crisp), atol=0.25)  # same ranks → nearly the same input
    assert not same_preprocessing(meta("none"), meta("equalize"))
    with pytest.raises(CheckpointError, match="asks for intensity step"):
        build_transform(meta("clahe-ish"))


def test_source_cue_augmentation_keeps_a_greyscale_radiograph_and_its_size():
    image = Image.fromarray(np.tile(np.linspace(0, 255, 200), (160, 1)).astype(np.uint8))
    torch.manual_seed(0)
    outputs = [source_cue_augmentation()(image) for _ in range(4)]
    assert all(out.mode == "L" and out.size == image.size for out in outputs)
    assert all(not np.array_equal(np.asarray(out), np.asarray(image)) for out in outputs)


def test_border_erasing_paints_an_edge_region_and_resolution_jitter_blurs():
    image = Image.fromarray(np.full((100, 120), 128, np.uint8))
    erased = np.asarray(BorderErasing()(image))
    changed = np.argwhere(erased != 128)
    assert len(changed) > 0 and set(np.unique(erased[erased != 128])) <= {0, 255}
    top, left = changed.min(0)
    bottom, right = changed.max(0)
    assert top == 0 or left == 0 or bottom == 99 or right == 119  # touches the image's edge
    stripes = Image.fromarray((np.indices((160, 160)).sum(0) % 2 * 255).astype(np.uint8))
    jittered = ResolutionJitter(low=40, high=40)(stripes)
    assert jittered.size == stripes.size and np.asarray(jittered).std() < np.asarray(stripes).std() / 2
