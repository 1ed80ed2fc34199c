"""`covidnet evaluate` on a CSV of real scans that is not ours (only path,label), with a broken row; what an
evaluated split records in the checkpoints' metadata."""

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import absolute_paths

import covidnet
from covidnet.assessment import metrics as metrics_module
from covidnet.assessment.evaluate import record_in_metadata
from covidnet.assessment.report_files import read_report, write_report
from covidnet.cli import main
from covidnet.models.artifacts import sha256_of
from covidnet.models.checkpoints import checkpoint_paths, verify_checkpoint
from covidnet.models.metadata import read_checkpoint_metadata


@pytest.fixture(scope="module")
def foreign_csv(real_scans, tmp_path_factory):
    folder = tmp_path_factory.mktemp("foreign")
    rows = []
    for k, path in enumerate(real_scans * 3):
        name = f"img{k}{path.suffix}"
        shutil.copy(path, folder / name)
        rows.append({"path": name, "label": covidnet.CLASSES[k % 3]})
    (folder / "broken.png").write_bytes(b"not an image")
    rows.append({"path": "broken.png", "label": "normal"})
    with (folder / "labels.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return folder / "labels.csv"


def test_report_has_every_metric_for_each_backbone_and_the_ensemble(weights_dir, foreign_csv, tmp_path, monkeypatch):
    monkeypatch.setattr(metrics_module, "BOOTSTRAP_ROUNDS", 20)  # the intervals' width is not what is tested
    out = tmp_path / "report.json"
    argv = ["--weights-dir", str(weights_dir), "evaluate", "--metadata", str(foreign_csv), "--out", str(out)]
    argv += ["--backbone", "all"]
    metadata_before = {p.name: p.read_bytes() for p in weights_dir.glob("*.json")}
    assert main(argv) == 0
    report = read_report(out)
    assert report.n == 9 and report.unreadable.count == 1
    assert "broken.png" in report.unreadable.examples[0]
    assert set(report.backbones) == set(covidnet.backbones())
    for metrics in report.models().values():
        assert metrics.n == 9
        assert sum(map(sum, metrics.confusion_matrix)) == 9
        assert set(metrics.per_class) == set(covidnet.CLASSES)
        assert set(metrics.roc) == set(covidnet.CLASSES)
        assert 0 <= metrics.balanced_accuracy <= 1 and 0 <= metrics.ece <= 1
        assert metrics.covid_vs_pneumonia_auc_by_archive is None  # no archive file beside the CSV
    resnet = report.backbones["resnet18"]
    assert 0 <= resnet.ece_before_temperature <= 1
    assert -1 <= resnet.shortcuts.saliency_sanity.median_spearman <= 1
    assert 0 <= resnet.shortcuts.accuracy_lungs_masked <= 1 and resnet.shortcuts.source_probe.majority_baseline > 0
    (source,) = resnet.by_source  # a CSV with only path,label: one unknown source, the whole set
    assert resnet.by_source[source].n == 9 and resnet.by_source[source].accuracy == resnet.metrics.accuracy.value
    assert report.ensemble.members == covidnet.backbones()
    gate = resnet.gate
    assert sum(row.n for row in gate.by_source.values()) == 9
    assert sum(row.flagged for row in gate.by_class.values()) == gate.flagged
    assert report.command.startswith("covidnet ")
    films = report.films  # every film, and each backbone's calibrated probabilities of it
    assert len(films.labels) == 9 and set(films.probabilities) == set(covidnet.backbones())
    assert np.allclose(films.of_model("resnet18").sum(axis=1), 1, atol=1e-4)
    ensemble_accuracy = (films.of_model("ensemble").argmax(1) == films.label_indices()).mean()
    assert ensemble_accuracy == pytest.approx(report.ensemble.metrics.accuracy.value)
    # a CSV that is no split of ours records nothing in the checkpoints' metadata
    assert {p.name: p.read_bytes() for p in weights_dir.glob("*.json")} == metadata_before


def test_shortcut_checks_are_reused_only_from_a_report_of_the_same_weights_on_the_same_films(
    weights_dir, foreign_csv, tmp_path, monkeypatch
):
    monkeypatch.setattr(metrics_module, "BOOTSTRAP_ROUNDS", 20)
    argv = ["--weights-dir", str(weights_dir), "evaluate", "--metadata", str(foreign_csv), "--backbone", "resnet18"]
    assert main([*argv, "--out", str(tmp_path / "first.json")]) == 0
    first = read_report(tmp_path / "first.json")
    measured = first.backbones["resnet18"]
    marked = replace(measured.shortcuts, accuracy_lungs_masked=0.123)  # a value no measurement here gives
    for name, sha in (("same", measured.weights_sha256), ("other", "0" * 64)):
        earlier = replace(first, backbones={"resnet18": replace(measured, shortcuts=marked, weights_sha256=sha)})
        write_report(earlier, tmp_path / f"{name}.json")
        out = tmp_path / f"from_{name}.json"
        assert main([*argv, "--reuse-checks", str(tmp_path / f"{name}.json"), "--out", str(out)]) == 0
    assert read_report(tmp_path / "from_same.json").backbones["resnet18"].shortcuts == marked
    assert read_report(tmp_path / "from_other.json").backbones["resnet18"].shortcuts == measured.shortcuts


def test_a_csv_without_the_needed_columns_is_a_usage_error(weights_dir, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("file,diagnosis\na.png,covid\n")
    argv = ["--weights-dir", str(weights_dir), "evaluate", "--metadata", str(bad), "--out", str(tmp_path / "r.json")]
    assert main(argv) == 2
    assert "path,label" in capsys.readouterr().err


def test_the_validation_split_records_metrics_and_the_uncertain_threshold_in_the_metadata_only(
    weights_dir, foreign_csv, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(metrics_module, "BOOTSTRAP_ROUNDS", 20)  # the intervals' width is not what is tested
    weights = tmp_path / "weights"
    shutil.copytree(weights_dir, weights, ignore=shutil.ignore_patterns("reports"))
    with foreign_csv.open(newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["path"] != "broken.png"]
    labelled, split = tmp_path / "labels.csv", tmp_path / "split.csv"
    with labelled.open("w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "label", "sha256"])
        writer.writeheader()
        writer.writerows({**row, "sha256": f"{k:064x}"} for k, row in enumerate(rows))
    with split.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sha256", "phash", "split", "round"])
        writer.writerows([f"{k:064x}", f"{k:016x}", "val" if k % 2 else "test", 1] for k in range(len(rows)))
    pts = {name: sha256_of(checkpoint_paths(name, weights)[0]) for name in covidnet.backbones()}
    thresholds = {n: read_checkpoint_metadata(checkpoint_paths(n, weights)[1]).thresholds for n in covidnet.backbones()}

    argv = ["--weights-dir", str(weights), "evaluate", "--metadata", str(labelled), "--root", str(foreign_csv.parent)]
    argv += ["--split", "val", "--split-file", str(split), "--no-shortcuts", "--out", str(tmp_path / "val.json")]
    assert main(argv) == 0

    assert "recorded metrics.validation in the metadata of" in capsys.readouterr().out
    report = read_report(tmp_path / "val.json")
    assert absolute_paths(json.loads((tmp_path / "val.json").read_text())) == []  # given absolute paths
    for name in covidnet.backbones():
        meta = read_checkpoint_metadata(checkpoint_paths(name, weights)[1])
        measured = report.backbones[name].metrics
        assert meta.thresholds == thresholds[name]  # chosen on unseen sources (calibrate-uncertain), not here
        assert meta.metrics["validation"]["n"] == report.n == len(rows) // 2
        assert meta.metrics["validation"]["macro_auc"]["value"] == measured.macro_auc.value
        assert meta.metrics["validation"]["ece"]["after_temperature"] == measured.ece
        assert absolute_paths(meta.metrics) == []
        assert sha256_of(checkpoint_paths(name, weights)[0]) == pts[name]  # the .pt is never touched
        verify_checkpoint(name, weights)


def test_a_report_of_other_weights_is_not_recorded(weights_dir, tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(weights_dir, weights, ignore=shutil.ignore_patterns("reports"))
    committed = read_report(Path(__file__).resolve().parents[1] / "weights" / "reports" / "internal_test.json")
    ours = read_checkpoint_metadata(checkpoint_paths("resnet18", weights)[1]).sha256
    report = replace(
        committed,
        backbones={**committed.backbones, "resnet18": replace(committed.backbones["resnet18"], weights_sha256=ours)},
    )
    before = {p.name: p.read_bytes() for p in weights.glob("*.json")}

    assert record_in_metadata(report, "internal_test", weights) == ["resnet18"]

    meta = read_checkpoint_metadata(checkpoint_paths("resnet18", weights)[1])
    assert meta.metrics["internal_test"]["n"] == committed.n and meta.thresholds.uncertain_below is None
    changed = {p.name for p in weights.glob("*.json") if p.read_bytes() != before[p.name]}
    assert changed == {"resnet18.json"}  # the others measured other weights
