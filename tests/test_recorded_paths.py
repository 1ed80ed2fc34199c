"""Metadata, reports and benchmark results record paths relative to the repository, never the absolute paths of
the machine that wrote them: the committed files, and what training, evaluation and the gate report write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CXR_ROOT, SHIPPED, absolute_paths

from covidnet.cli.common import command_line
from covidnet.data.locations import DEFAULT_SPLIT
from covidnet.models.checkpoints import default_weights_dir
from covidnet.provenance import recorded_path
from covidnet.training.summary import training_summary
from covidnet.training.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted(
    [
        *SHIPPED.glob("*.json"),
        *(SHIPPED / "reports").glob("*.json"),
        *(ROOT / "docs" / "experiments").rglob("*.json"),
        *(ROOT / "benchmarks").glob("*.json"),
    ]
)


def test_the_helper_finds_absolute_paths_alone_or_inside_a_text_but_not_urls_or_fractions():
    found = absolute_paths({"a": ["/tmp/x"], "data": "metadata.csv, split 'val' of /work/main/weights/split.csv"})
    assert found == ["/tmp/x", "metadata.csv, split 'val' of /work/main/weights/split.csv"]
    assert absolute_paths({"u": "https://github.com/a/b", "s": "1/16 of weights/split.csv", "n": 3}) == []


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_metadata_and_reports_hold_no_absolute_path(path):
    assert absolute_paths(json.loads(path.read_text())) == []


def test_a_path_is_recorded_relative_to_the_repository():
    assert recorded_path(DEFAULT_SPLIT) == "weights/split.csv"
    assert recorded_path(default_weights_dir()) == "weights"
    assert recorded_path(CXR_ROOT) == "../shared/data/cxr"
    assert recorded_path(ROOT / "runs" / ".." / "weights") == "weights"


def test_a_command_line_records_its_absolute_paths_relative_to_the_repository(monkeypatch):
    monkeypatch.setattr("sys.argv", ["covidnet", "evaluate", "--split-file", str(DEFAULT_SPLIT), "--out", "r.json"])
    assert command_line() == "covidnet evaluate --split-file weights/split.csv --out r.json"


def test_a_training_record_holds_relative_paths_when_given_absolute_ones(tmp_path):
    config = TrainConfig(
        "resnet18", CXR_ROOT, DEFAULT_SPLIT, default_weights_dir(), init=str(ROOT / "runs" / "start"),
        state_dir=ROOT / "runs",
    )  # fmt: skip
    record = training_summary(config, [], [], best_epoch=1, seconds=1.0)
    assert absolute_paths(record.__dict__) == []
    assert record.data.startswith("../shared/data/cxr (")
    settings = record.settings
    assert (settings["data"], settings["split_file"], settings["out"]) == (
        "../shared/data/cxr",
        "weights/split.csv",
        "weights",
    )
    assert (settings["init"], settings["state_dir"]) == ("runs/start", "runs")
