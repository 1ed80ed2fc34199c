"""The command line: in-process through ``main`` for speed, and once as `python -m covidnet`."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scan_files import colour_photo, one_lung_field

import covidnet
from covidnet.cli import main
from covidnet.models.checkpoints import checkpoint_paths


def covidnet_cli(*args: str | Path, weights: Path | None = None) -> subprocess.CompletedProcess:
    argv = (["--weights-dir", str(weights)] if weights is not None else []) + [str(a) for a in args]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's own usage errors
            code = e.code
    return subprocess.CompletedProcess(argv, code, stdout.getvalue(), stderr.getvalue())


def test_python_dash_m_covidnet_runs_as_a_program(weights_dir, real_scans):
    command = [
        sys.executable,
        "-m",
        "covidnet",
        "--weights-dir",
        str(weights_dir),
        "predict",
        str(real_scans[2]),
        "--backbone",
        "resnet18",
        "--json",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["backbone"] == "resnet18"


@pytest.fixture(scope="module")
def scan_dir(real_scans, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scans")
    for path in real_scans:
        shutil.copy(path, folder / path.name)
    (folder / "nested").mkdir()
    shutil.copy(real_scans[0], folder / "nested" / real_scans[0].name)
    (folder / "broken.png").write_bytes(b"this is not a png")
    (folder / "notes.txt").write_text("ignored: not a scan suffix")
    return folder


def test_backbones_lists_each_with_its_weights_state(weights_dir, tmp_path):
    shutil.copy(checkpoint_paths("vgg11_bn", weights_dir)[1], tmp_path / "vgg11_bn.json")
    (tmp_path / "vgg11_bn.pt").write_bytes(b"tampered")
    result = covidnet_cli("backbones", weights=tmp_path)
    assert result.returncode == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert set(lines) == set(covidnet.backbones())
    assert "No trained weights" in lines["resnet18"]
    assert "sha256" in lines["vgg11_bn"] and "sha256 ok" not in lines["vgg11_bn"]
    ok = covidnet_cli("backbones", weights=weights_dir)
    assert all("sha256 ok" in line for line in ok.stdout.splitlines())


def test_predict_all_backbones_prints_one_json_row_per_scan_and_backbone(weights_dir, real_scans):
    result = covidnet_cli("predict", real_scans[0], "--backbone", "all", "--json", weights=weights_dir)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["backbone"] for r in rows] == [*covidnet.backbones(), "ensemble"]
    for row in rows:
        assert list(row) == [
            "scan", "backbone", "probabilities", "prediction", "uncertain", "flagged", "heatmap_in_lungs",
            "unfamiliarity", "lungs", "warnings", "heatmap",
        ]  # fmt: skip
        assert row["lungs"]["plausible"] and row["heatmap_in_lungs"] is None  # no heatmap without --heatmaps
        assert set(row["probabilities"]) == set(covidnet.CLASSES)
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
        assert row["prediction"] == max(row["probabilities"], key=row["probabilities"].get)
        assert row["heatmap"] is None and row["warnings"] == [] and row["unfamiliarity"] is None  # none fitted


def test_a_scan_the_gate_refuses_gets_no_class_and_a_lateral_view_is_called_lateral(weights_dir, real_scans, tmp_path):
    (tmp_path / "dog.png").write_bytes(colour_photo())
    (tmp_path / "side.png").write_bytes(one_lung_field(real_scans[2]))
    scans = [tmp_path / "dog.png", tmp_path / "side.png", real_scans[0]]
    result = covidnet_cli("predict", *scans, "--backbone", "all", "--json", weights=weights_dir)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    by_scan = {str(scan): [r for r in rows if r["scan"] == str(scan)] for scan in scans}
    for scan, verdict in zip(scans, ["not_chest_xray", "lateral_view", None], strict=True):
        assert [r["backbone"] for r in by_scan[str(scan)]] == [*covidnet.backbones(), "ensemble"]
        for row in by_scan[str(scan)]:
            assert row["flagged"] == verdict
            assert verdict in [w["code"] for w in row["warnings"]] or verdict is None
            assert set(row["probabilities"]) == set(covidnet.CLASSES)  # kept for programs, but no class
            assert (row["prediction"] is None) == (row["uncertain"] is None) == (verdict is not None)
    text = covidnet_cli("predict", tmp_path / "dog.png", "--backbone", "resnet18", weights=weights_dir)
    assert "resnet18: no class, refused by the gate  [not_chest_xray]" in text.stdout
    assert not any(covidnet.display_name(c) in text.stdout for c in covidnet.CLASSES)


def test_several_backbones_give_each_scan_an_ensemble_row_averaging_their_probabilities(weights_dir, real_scans):
    result = covidnet_cli("predict", *real_scans[:2], "--backbone", "all", "--json", weights=weights_dir)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    per_scan = len(covidnet.backbones()) + 1
    assert [r["backbone"] for r in rows] == [*covidnet.backbones(), "ensemble"] * 2
    for start in (0, per_scan):
        *members, combined = rows[start : start + per_scan]
        assert {r["scan"] for r in members} == {combined["scan"]}
        for c in covidnet.CLASSES:
            mean = sum(m["probabilities"][c] for m in members) / len(members)
            assert combined["probabilities"][c] == pytest.approx(mean, abs=1e-6)
        assert combined["prediction"] == max(combined["probabilities"], key=combined["probabilities"].get)
        assert combined["lungs"] == members[0]["lungs"] and combined["heatmap"] is None
    one = covidnet_cli("predict", real_scans[0], "--backbone", "resnet18", "--json", weights=weights_dir)
    assert [json.loads(line)["backbone"] for line in one.stdout.splitlines()] == ["resnet18"]


def test_a_folder_with_a_broken_file_gives_one_error_row_and_exit_1(weights_dir, scan_dir, tmp_path):
    heatmaps = tmp_path / "heatmaps"
    result = covidnet_cli(
        "predict",
        scan_dir,
        "--backbone",
        "resnet18",
        "--json",
        "--heatmaps",
        heatmaps,
        "--cam",
        "eigencam",
        weights=weights_dir,
    )
    assert result.returncode == 1
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    errors = [r for r in rows if "error" in r]
    assert len(errors) == 1 and errors[0]["scan"].endswith("broken.png")
    assert set(errors[0]) == {"scan", "error"} and "not an image" in errors[0]["error"]
    good = [r for r in rows if "error" not in r]
    assert len(good) == 4  # three scans plus the nested copy; notes.txt is not a scan
    written = {Path(r["heatmap"]) for r in good}
    assert len(written) == 4 and all(p.exists() and Image.open(p).mode == "RGB" for p in written)
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2_with_a_plain_message(weights_dir, real_scans, tmp_path):
    unknown = covidnet_cli("predict", real_scans[0], "--backbone", "resnet19", weights=weights_dir)
    assert unknown.returncode == 2 and "Valid backbones" in unknown.stderr
    untrained = covidnet_cli("predict", real_scans[0], "--backbone", "resnet18", weights=tmp_path)
    assert untrained.returncode == 2 and "No trained weights for resnet18" in untrained.stderr
    assert untrained.stdout == ""
    nothing = covidnet_cli("predict", real_scans[0], weights=tmp_path)
    assert nothing.returncode == 2 and "No backbone has trained weights" in nothing.stderr
    bad_cam = covidnet_cli("predict", real_scans[0], "--cam", "magic", weights=weights_dir)
    assert bad_cam.returncode == 2
    for result in (unknown, untrained, nothing, bad_cam):
        assert "Traceback" not in result.stderr


def test_human_readable_output_names_the_classes(weights_dir, real_scans):
    result = covidnet_cli("predict", real_scans[1], "--backbone", "densenet121", weights=weights_dir)
    assert result.returncode == 0
    assert "densenet121" in result.stdout and "COVID-19" in result.stdout and "Pneumonia" in result.stdout


def test_backbone_all_means_every_backbone_with_verified_weights_in_every_command(weights_dir, real_scans, tmp_path):
    from covidnet.cli.common import BACKBONE_HELP
    from covidnet.cli.parser import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    for name in ("predict", "evaluate", "fit-gate", "gate-report"):
        (option,) = [a for a in commands[name]._actions if "--backbone" in a.option_strings]
        assert option.default == "all" and option.help == BACKBONE_HELP
    for path in checkpoint_paths("resnet18", weights_dir):
        shutil.copy(path, tmp_path / path.name)
    result = covidnet_cli("predict", real_scans[0], "--json", weights=tmp_path)
    assert result.returncode == 0
    assert [json.loads(line)["backbone"] for line in result.stdout.splitlines()] == ["resnet18"]
    skipped = [line for line in result.stderr.splitlines() if line.startswith("covidnet: skipping ")]
    assert [line.split()[2] for line in skipped] == [f"{n}:" for n in covidnet.backbones() if n != "resnet18"]
    for command in (["fit-gate"], ["gate-report", "--corpus", tmp_path]):
        nothing = covidnet_cli(*command, weights=tmp_path / "empty")
        assert nothing.returncode == 2 and "No backbone has trained weights" in nothing.stderr


def test_gate_report_reads_one_subfolder_per_kind(weights_dir, real_scans, tmp_path):
    corpus = tmp_path / "corpus"
    for kind, name, image in [
        ("colour noise", "noise", Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 96, 3), np.uint8))),
        ("blank", "grey", Image.new("L", (96, 96), 128)),
        ("blank", "white", Image.new("L", (96, 96), 255)),
    ]:
        (corpus / kind).mkdir(parents=True, exist_ok=True)
        image.save(corpus / kind / f"{name}.png")
    (corpus / "blank" / "notes.txt").write_text("not an image")
    frontal = tmp_path / "frontal.csv"
    rows = "".join(f"{p},{c}\n" for p, c in zip(real_scans, covidnet.CLASSES, strict=True))
    frontal.write_text("path,label\n" + rows)
    out = tmp_path / "gate.json"
    result = covidnet_cli(
        "gate-report", "--backbone", "resnet18", "--corpus", corpus, "--frontal", frontal, "--out", out,
        weights=weights_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert list(report) == ["schema_version", "n", "kinds", "backbones", "command", "lung_check"]
    assert report["lung_check"]["frontal"] == {"n": 3, "no_lung_fields": 0, "lateral_view": 0}
    assert report["lung_check"]["corpus"]["n"] == 3 and report["lung_check"]["corpus"]["no_lung_fields"] == 3
    assert report["n"] == 3 and report["kinds"] == {"blank": 2, "colour noise": 1}
    entry = report["backbones"]["resnet18"]
    assert list(entry) == ["gate_fitted", "gate_of", "flagged_share", "flagged_share_by_kind"]
    assert entry["flagged_share"] == 1.0 and entry["flagged_share_by_kind"] == {"blank": 1.0, "colour noise": 1.0}
    missing = covidnet_cli("gate-report", "--corpus", tmp_path / "nowhere", weights=weights_dir)
    assert missing.returncode == 2 and "python tests/gate_corpus.py DIR" in missing.stderr
