"""`covidnet evaluate` on a CSV of real scans that is not ours (only path,label), with a broken row."""

import csv
import json
import shutil

import pytest

import covidnet
from covidnet.cli import main


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


def test_report_has_every_metric_for_each_backbone_and_the_ensemble(weights_dir, foreign_csv, tmp_path):
    out = tmp_path / "report.json"
    argv = ["--weights-dir", str(weights_dir), "evaluate", "--metadata", str(foreign_csv), "--out", str(out)]
    argv += ["--backbone", "all"]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["n"] == 9 and report["unreadable"]["count"] == 1
    assert "broken.png" in report["unreadable"]["examples"][0]
    assert set(report["backbones"]) == set(covidnet.backbones())
    for metrics in [*report["backbones"].values(), report["ensemble"]]:
        assert metrics["n"] == 9
        assert sum(map(sum, metrics["confusion_matrix"])) == 9
        assert set(metrics["per_class"]) == set(covidnet.CLASSES)
        for per_class in metrics["per_class"].values():
            assert set(per_class) == {"auc", "sensitivity", "specificity", "ppv"}
            assert {"value", "low", "high"} <= set(per_class["auc"])
        assert set(metrics["roc"]) == set(covidnet.CLASSES)
        assert 0 <= metrics["balanced_accuracy"] <= 1
    resnet = report["backbones"]["resnet18"]
    assert set(resnet["ece"]) == {"before_temperature", "after_temperature"}
    shortcuts = resnet["shortcuts"]
    assert {"accuracy_lungs_masked", "accuracy_top_and_corners_masked", "source_probe", "saliency_sanity"} <= set(
        shortcuts
    )
    assert -1 <= shortcuts["saliency_sanity"]["median_spearman"] <= 1
    assert report["ensemble"]["members"] == covidnet.backbones()
    gate = resnet["gate"]
    assert sum(row["n"] for row in gate["by_source"].values()) == 9
    assert sum(row["flagged"] for row in gate["by_class"].values()) == gate["flagged"]


def test_a_csv_without_the_needed_columns_is_a_usage_error(weights_dir, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("file,diagnosis\na.png,covid\n")
    argv = ["--weights-dir", str(weights_dir), "evaluate", "--metadata", str(bad), "--out", str(tmp_path / "r.json")]
    assert main(argv) == 2
    assert "path,label" in capsys.readouterr().err
