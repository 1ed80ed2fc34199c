"""The data set's defaults, defined once: where the data lives, where its split file is, which source is held out."""

from __future__ import annotations

from pathlib import Path

from covidnet.models.checkpoints import default_weights_dir

DEFAULT_DATA = Path("../shared/data/cxr")
"""The shared chest X-ray data set (a folder with ``metadata.csv``), relative to the working directory."""

DEFAULT_SPLIT = default_weights_dir() / "split.csv"
"""The split file (sha256 → perceptual hash → split of every image), beside the weights in use."""

EXTERNAL_SOURCE = "GeneralBlockchain/covid-19-chest-xray-lung-bounding-boxes-dataset"
"""ieee8023 via this repository (images from many hospitals and papers): held out whole as the external test set."""
