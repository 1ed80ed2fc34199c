import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from covidnet.io.preprocessing import Geometry, build_transform
from covidnet.models.metadata import CheckpointMetadata

CARD = CheckpointMetadata(
    backbone="resnet18", architecture="resnet18", input_size=96, sha256="", size_bytes=0, parameters=0
)


def test_output_follows_the_card():
    image = Image.fromarray(np.full((120, 200), 255, np.uint8))
    x = build_transform(CARD)(image)
    assert x.shape == (3, 96, 96) and x.dtype == torch.float32
    expected = (1 - torch.tensor(CARD.normalisation["mean"])) / torch.tensor(CARD.normalisation["std"])
    assert torch.allclose(x[:, 50, 50], expected)
    one_channel = dataclasses.replace(CARD, channels=1, normalisation={"mean": (0.5,), "std": (0.5,)})
    assert build_transform(one_channel)(image).shape == (1, 96, 96)


def test_the_whole_image_is_kept_so_left_stays_left():
    pixels = np.zeros((100, 300), np.uint8)
    pixels[:, :30] = 255  # the left tenth is bright
    x = build_transform(CARD)(Image.fromarray(pixels))[0]
    assert x[:, :8].mean() > 1.5 and x[:, 12:].mean() < -1.5


def test_augmentation_runs_in_front_of_the_same_tail():
    image = Image.fromarray(np.full((64, 64), 10, np.uint8))
    flipped = build_transform(CARD, augment=lambda im: Image.fromarray(255 - np.asarray(im)))(image)
    assert torch.allclose(flipped, build_transform(CARD)(Image.fromarray(np.full((64, 64), 245, np.uint8))))


def test_preprocessing_records_its_geometry_and_maps_a_heatmap_back_onto_the_image():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 140), dtype=np.uint8))
    x, geometry = build_transform(CARD).prepare(image)
    assert x.shape == (3, 96, 96) and geometry.box == (0, 0, 140, 90) and geometry.image_size == (140, 90)
    grid = np.zeros((8, 8), np.float32)
    grid[:, :4] = 1.0  # the left half of the input
    heatmap = geometry.to_image(grid)
    assert heatmap.shape == (90, 140) and heatmap[:, :60].min() > 0.99 and heatmap[:, 80:].max() < 0.01
    cropped = Geometry((140, 90), (20, 10, 120, 80), 96).to_image(np.ones((8, 8), np.float32))
    assert cropped.shape == (90, 140) and cropped[10:80, 20:120].min() == 1.0
    assert cropped.sum() == pytest.approx(100 * 70)  # zero outside the box
