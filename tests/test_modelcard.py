"""The model card is generated from reports: tables, findings, the README block and the cards' metrics."""

import copy
import json
import shutil
from pathlib import Path

import numpy as np
from conftest import CXR_ROOT

import covidnet
from covidnet.assessment.metrics import summarise
from covidnet.assessment.model_card import RESULTS_END, RESULTS_START, write_model_card
from covidnet.models.checkpoints import checkpoint_paths
from covidnet.models.metadata import read_checkpoint_metadata

SPLIT = Path(__file__).resolve().parents[1] / "weights" / "split.csv"


def report(weights: Path, *, lungs_masked: float) -> dict:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 120)
    probabilities = np.eye(3)[labels] * 0.7 + rng.dirichlet([1, 1, 1], 120) * 0.3
    backbones, summary = {}, summarise(probabilities, labels)
    for name in covidnet.backbones():
        m = copy.deepcopy(summary)
        m["ece"] = {"before_temperature": 0.2, "after_temperature": m["ece"]}
        m["weights_sha256"] = read_checkpoint_metadata(checkpoint_paths(name, weights)[1]).sha256
        m["gate"] = {"fitted": True, "flagged": 1, "flagged_share": 1 / 120}
        m["shortcuts"] = {
            "accuracy": 0.95, "accuracy_lungs_masked": lungs_masked, "accuracy_top_and_corners_masked": 0.9,
            "majority_class_accuracy": 0.36, "source_probe": {"accuracy": 0.8, "majority_baseline": 0.4, "sources": []},
            "saliency_sanity": {"median_spearman": 0.1, "max_spearman": 0.2, "n": 3},
        }  # fmt: skip
        backbones[name] = m
    return {"data": "synthetic", "n": 120, "backbones": backbones, "ensemble": summary}


def test_model_card_readme_table_and_card_metrics_come_from_the_reports(weights_dir, tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(weights_dir, weights, ignore=shutil.ignore_patterns("reports"))
    reports = weights / "reports"
    reports.mkdir()
    (reports / "internal_test.json").write_text(json.dumps(report(weights, lungs_masked=0.9)))
    (reports / "external.json").write_text(json.dumps(report(weights, lungs_masked=0.4)))
    (reports / "validation.json").write_text(json.dumps(report(weights, lungs_masked=0.4)))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{RESULTS_START}\nold\n{RESULTS_END}\n\nafter\n")
    out = tmp_path / "model_card.md"

    markdown = write_model_card(reports, weights, CXR_ROOT / "metadata.csv", SPLIT, out, readme)

    assert out.read_text() == markdown
    for section in ("## Intended use", "Not for clinical use", "## Data", "## Results", "## Shortcut checks",
                    "## Chest X-ray gate", "## Known failure modes"):  # fmt: skip
        assert section in markdown
    assert "CC BY 4.0" in markdown and "external" in markdown
    assert "with the lungs blacked out" in markdown  # 0.9 > 0.36 + margin on the internal test
    assert markdown.count("with the lungs blacked out") == len(covidnet.backbones())  # not on the external set
    text = readme.read_text()
    assert "old" not in text and "| data | model |" in text and text.endswith("after\n")
    meta = read_checkpoint_metadata(checkpoint_paths("resnet18", weights)[1])
    assert {"internal_test", "external", "uncertain_below"} <= set(meta.metrics)
    assert 0.5 <= meta.metrics["uncertain_below"] <= 0.95
