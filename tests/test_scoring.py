"""Batched scoring: batches equal one scan at a time, inputs (folders, globs, listings), outputs, resume, errors."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from scan_files import odd_inputs
from test_cli import covidnet_cli

import covidnet
from covidnet.inference.feature_gate import FeatureGate
from covidnet.inference.predictor import Predictor
from covidnet.inference.results import Analysis
from covidnet.io.preprocessing import build_transform
from covidnet.io.reading import SCAN_SUFFIXES
from covidnet.models.checkpoints import load_checkpoint
from covidnet.notices import WarningCode
from covidnet.scoring.outputs import finished
from covidnet.scoring.pipeline import AHEAD, score_blocks
from covidnet.scoring.rows import COLUMNS, flat

BACKBONES = covidnet.backbones()


@pytest.fixture(scope="module")
def archive(real_scans, tmp_path_factory) -> Path:
    """Real scans, made-up pictures (colour, blank, multi-frame, DICOM, 16-bit …) and broken files, in subfolders."""
    folder = tmp_path_factory.mktemp("archive")
    (folder / "real").mkdir()
    (folder / "made").mkdir()
    for path in real_scans:
        shutil.copy(path, folder / "real" / path.name)
    colour = np.random.default_rng(0).integers(0, 256, (200, 240, 3), dtype=np.uint8)
    Image.fromarray(colour).save(folder / "made" / "photo.png")
    Image.new("L", (300, 300), 128).save(folder / "made" / "blank.png")
    for name, data in odd_inputs():
        if name != "huge.jpg":  # 64 megapixels: slow to decode, and test_survival reads it already
            (folder / "made" / name).write_bytes(data)
    return folder


def assert_same_rows(rows: list[dict], expected: list[dict]) -> None:
    """Equal rows, the probabilities to float tolerance (a batch's forward pass may sum in another order)."""
    assert [(r["scan"], r.get("backbone")) for r in rows] == [(r["scan"], r.get("backbone")) for r in expected]
    for row, want in zip(rows, expected, strict=True):
        assert list(row) == list(want)
        assert row.get("probabilities") == pytest.approx(want.get("probabilities"), abs=1e-5)
        if "warnings" in row:
            assert [w["code"] for w in row["warnings"]] == [w["code"] for w in want["warnings"]]
        rest = {k: v for k, v in row.items() if k not in ("probabilities", "warnings")}
        assert rest == {k: v for k, v in want.items() if k not in ("probabilities", "warnings")}


def assert_same_warnings(together: Analysis, alone: Analysis) -> None:
    """The same warnings; their details (e.g. the heatmap's share inside the lungs) to float tolerance."""
    assert [w.code for w in together.warnings] == [w.code for w in alone.warnings]
    for a, b in zip(together.warnings, alone.warnings, strict=True):
        assert a.details == pytest.approx(b.details, abs=1e-4)


def gated(weights_dir: Path, threshold: float) -> Predictor:
    """resnet18 with a feature gate (unit statistics) whose limit is ``threshold``."""
    model, meta = load_checkpoint("resnet18", weights_dir)
    widths = [128, 256, 512]  # mean and std of resnet18's layer1..layer3 channels
    means = tuple(torch.zeros(w, dtype=torch.float64) for w in widths)
    precisions = tuple(torch.eye(w, dtype=torch.float64) for w in widths)
    return Predictor.of(model, meta, features=FeatureGate(means, precisions, (1.0, 1.0, 1.0), threshold))


@pytest.mark.parametrize(
    ("name", "cam"), [*((n, None) for n in BACKBONES), *((n, "gradcam++") for n in BACKBONES), ("resnet18", "eigencam")]
)
def test_a_batch_analysis_equals_analysing_each_scan_alone(name, cam, weights_dir, archive):
    scans = [covidnet.read_scan(p) for p in sorted((archive / "real").iterdir())]
    scans += [covidnet.read_scan(archive / "made" / n) for n in ("photo.png", "blank.png", "animated.gif")]
    model = covidnet.load(name, weights_dir=weights_dir)
    batched = model.analyze_batch(scans, cam=cam)
    for scan, together in zip(scans, batched, strict=True):
        alone = model.analyze(scan, cam=cam)
        assert together.probabilities == pytest.approx(alone.probabilities, abs=1e-5)
        assert_same_warnings(together, alone)
        assert together.prediction == alone.prediction and together.target == alone.target
        if cam is None:
            assert together.heatmap is None and alone.heatmap is None
        else:
            assert together.heatmap.shape == alone.heatmap.shape == scan.image.size[::-1]
            np.testing.assert_allclose(together.grid, alone.grid, atol=1e-4)
    codes = [[w.code for w in a.warnings] for a in batched]
    gif = [WarningCode.FIRST_FRAME, WarningCode.NOT_CHEST_XRAY]  # a made frame: no lung fields on it
    assert codes[3:] == [[WarningCode.NOT_CHEST_XRAY], [WarningCode.NOT_CHEST_XRAY], gif]


def test_the_feature_gate_flags_the_same_scans_in_a_batch_as_alone(weights_dir, real_scans):
    scans = [covidnet.read_scan(p) for p in real_scans]
    scores = [gated(weights_dir, -1.0).analyze(s, cam=None).warnings[0].details["score"] for s in scans]
    low, middle = sorted(scores)[:2]
    limit = (low + middle) / 2  # some scans above the limit, some not (none on it, where float noise could tip it)
    model = gated(weights_dir, limit)
    batched = model.analyze_batch(scans, cam="gradcam", target="covid")
    for scan, score, together in zip(scans, scores, batched, strict=True):
        alone = model.analyze(scan, cam="gradcam", target="covid")
        assert together.probabilities == pytest.approx(alone.probabilities, abs=1e-5)
        assert [w.details["score"] for w in together.warnings] == pytest.approx(
            [w.details["score"] for w in alone.warnings]
        )
        np.testing.assert_allclose(together.grid, alone.grid, atol=1e-4)
        assert together.flagged == alone.flagged == (score > limit)
    assert 0 < sum(a.flagged for a in batched) < len(scans)


def test_batch_size_n_gives_the_rows_of_batch_size_1_with_error_rows_in_place(weights_dir, archive):
    names = ["resnet18", "vgg11_bn"]
    one = list(covidnet.score(archive, backbones=names, batch_size=1, weights_dir=weights_dir))
    five = list(covidnet.score(archive, backbones=names, batch_size=5, weights_dir=weights_dir, workers=3))
    assert_same_rows(five, one)
    files = sorted(p for p in archive.rglob("*") if p.is_file() and p.suffix.lower() in SCAN_SUFFIXES)
    assert list(dict.fromkeys(r["scan"] for r in five)) == [str(p) for p in files]
    errors = [r for r in five if "error" in r]
    assert {Path(r["scan"]).name for r in errors} >= {"empty.png", "truncated.png", "bomb.png", "compressed.dcm"}
    assert all(set(r) == {"scan", "error"} and r["error"] for r in errors)
    good = [r for r in five if "error" not in r]
    assert len(good) == (len(files) - len(errors)) * (len(names) + 1)  # each backbone and their ensemble
    assert all(sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5) for r in good)


def test_rows_are_the_analysis_serialised_form_with_the_scan_and_its_heatmap(weights_dir, real_scans, tmp_path):
    model = covidnet.load("densenet121", weights_dir=weights_dir)
    [row] = covidnet.score(real_scans[1], backbones="densenet121", heatmaps=tmp_path, weights_dir=weights_dir)
    expected = model.analyze(real_scans[1], cam="gradcam").to_dict()
    assert list(row) == ["scan", *expected, "heatmap"]
    assert row["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-5)
    overlay = Image.open(row["heatmap"])
    assert Path(row["heatmap"]).parent == tmp_path and overlay.mode == "RGB"
    assert overlay.size == covidnet.read_scan(real_scans[1]).image.size


def test_reading_runs_a_bounded_number_of_scans_ahead_of_the_models(weights_dir, real_scans):
    taken = []

    def endless():
        for k, path in enumerate(itertools.cycle(real_scans)):
            taken.append(k)
            yield f"{k}:{path.name}", path

    model = covidnet.load("resnet18", weights_dir=weights_dir)
    first = next(score_blocks(endless(), [model], batch_size=4))
    assert first.scans == 4 and [r.scan for r in first.results] == [f"{k}:{real_scans[k % 3].name}" for k in range(4)]
    assert len(taken) <= 4 + AHEAD * 4 + 1


def test_inputs_can_be_globs_and_csv_or_parquet_listings_with_relative_paths(weights_dir, archive, tmp_path):
    real = sorted((archive / "real").iterdir())
    pattern = str(archive / "re*" / "*.jpg")
    from_glob = [r["scan"] for r in covidnet.score(pattern, backbones="resnet18", weights_dir=weights_dir)]
    assert from_glob == [str(p) for p in real]
    (tmp_path / "lists").mkdir()
    csv_listing = tmp_path / "lists" / "scans.csv"
    csv_listing.write_text("label,path\nx,../copied.jpg\ny," + str(real[1]) + "\n")
    shutil.copy(real[0], tmp_path / "copied.jpg")
    parquet_listing = tmp_path / "scans.parquet"
    pq.write_table(pa.table({"path": [str(real[2]), "missing.png"]}), parquet_listing)
    rows = list(covidnet.score([csv_listing, parquet_listing], backbones="resnet18", weights_dir=weights_dir))
    assert [r["scan"] for r in rows] == [
        str(tmp_path / "lists" / "../copied.jpg"), str(real[1]), str(real[2]), str(tmp_path / "missing.png")
    ]  # fmt: skip
    assert "error" not in rows[0] and "Cannot open" in rows[3]["error"]
    (tmp_path / "nopath.csv").write_text("file\na.png\n")
    with pytest.raises(covidnet.CovidNetError, match="no 'path' column"):
        list(covidnet.score(tmp_path / "nopath.csv", weights_dir=weights_dir))


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_out_writes_every_row_and_resume_after_a_crash_finishes_the_rest_once(suffix, weights_dir, archive, tmp_path):
    full, out = tmp_path / f"full{suffix}", tmp_path / f"crashed{suffix}"
    args = ["predict", archive, "--backbone", "all", "--batch-size", "4"]
    first = covidnet_cli(*args, "--out", full, weights=weights_dir)
    assert first.returncode == 1, first.stderr  # broken files among the scans
    expected = read_rows(full)
    assert len(expected) > 20 and {r["scan"] for r in expected if r["error"]}
    simulate_crash(full, out, keep=8)  # the first blocks on disk, a last one cut short, one scan half done
    assert covidnet_cli(*args, "--out", out, weights=weights_dir).returncode == 2  # no overwriting
    resumed = covidnet_cli(*args, "--out", out, "--resume", weights=weights_dir)
    assert resumed.returncode == 1 and "Traceback" not in resumed.stderr
    rows = read_rows(out)
    key = lambda r: (r["scan"], r["backbone"] or "")  # noqa: E731
    assert sorted(map(key, rows)) == sorted(map(key, expected))  # every row, none twice
    for row, want in zip(sorted(rows, key=key), sorted(expected, key=key), strict=True):
        assert numbers(row) == pytest.approx(numbers(want), abs=1e-5)
        assert {k: v for k, v in row.items() if not k.startswith("p_")} == {
            k: v for k, v in want.items() if not k.startswith("p_")
        }
    again = covidnet_cli(*args, "--out", out, "--resume", weights=weights_dir)
    assert read_rows(out) == rows and "0 scans scored" in again.stderr


def read_rows(path: Path) -> list[dict]:
    """An output's rows in their flat form, in file order."""
    if path.suffix == ".jsonl":
        return [flat(json.loads(line)) for line in path.read_text().splitlines()]
    if path.suffix == ".csv":
        import csv

        with path.open(newline="") as f:
            return [{k: v or None for k, v in row.items()} for row in csv.DictReader(f)]
    return pq.read_table(path).to_pylist()


def numbers(row: dict) -> list[float]:
    return [float(v) for k, v in row.items() if k.startswith("p_") and v is not None]


def simulate_crash(full: Path, out: Path, keep: int) -> None:
    """``out`` as a crash would leave it: the first ``keep`` rows of ``full``, then half a line (or a half-written
    Parquet part); the last kept row leaves its scan with only some of its backbones' rows."""
    if full.suffix == ".parquet":
        out.mkdir()
        pq.write_table(pq.read_table(full).slice(0, keep), out / "part-000000.parquet")
        (out / ".part-000001.parquet.partial").write_bytes(b"PAR1 half a file")
        return
    lines = full.read_text().splitlines(keepends=True)
    header = 1 if full.suffix == ".csv" else 0
    out.write_text("".join(lines[: header + keep]) + lines[header + keep][:25])


def test_finished_reads_back_what_an_output_holds(tmp_path):
    out = tmp_path / "rows.jsonl"
    out.write_text('{"scan": "a.png", "backbone": "resnet18"}\n{"scan": "b.png", "error": "unreadable"}\n{"sc')
    done = finished(out)
    assert done.pairs == {("a.png", "resnet18"), ("b.png", None)}
    assert done.complete("b.png", ["resnet18", "vgg11_bn"]) and not done.complete("a.png", ["resnet18", "vgg11_bn"])
    table = tmp_path / "rows.csv"
    table.write_text(",".join(COLUMNS) + "\na.png,resnet18" + "," * (len(COLUMNS) - 2) + "\nb.png,")
    assert finished(table).pairs == {("a.png", "resnet18")}  # "b.png," was cut short: not an unreadable scan


def test_every_field_of_a_row_has_a_table_column(weights_dir, real_scans):
    [row] = covidnet.score(real_scans[0], backbones="resnet18", weights_dir=weights_dir)
    cells = flat(row)
    assert list(cells) == list(COLUMNS) and cells["p_covid"] == row["probabilities"]["covid"]
    assert json.loads(cells["warnings"]) == row["warnings"] and cells["error"] is None
    assert json.loads(cells["lungs"]) == row["lungs"] and cells["heatmap_in_lungs"] == row["heatmap_in_lungs"]
    with pytest.raises(ValueError, match="no table column for opacity"):
        flat({**row, "opacity": 0.5})


def test_the_cli_reports_usage_errors_plainly(weights_dir, real_scans, tmp_path):
    resume = covidnet_cli("predict", real_scans[0], "--resume", weights=weights_dir)
    assert resume.returncode == 2 and "--out FILE" in resume.stderr
    unknown = covidnet_cli("predict", real_scans[0], "--out", tmp_path / "rows.xlsx", weights=weights_dir)
    assert unknown.returncode == 2 and ".parquet" in unknown.stderr
    ray_csv = covidnet_cli(
        "predict", real_scans[0], "--engine", "ray", "--out", tmp_path / "r.csv", weights=weights_dir
    )
    assert ray_csv.returncode == 2 and "Parquet" in ray_csv.stderr
    nothing = covidnet_cli("predict", str(tmp_path / "*.png"), weights=weights_dir)
    assert nothing.returncode == 2 and "No scans found" in nothing.stderr
    for result in (resume, unknown, ray_csv, nothing):
        assert "Traceback" not in result.stderr


def test_a_predictor_prepares_a_scan_the_way_analyze_does(weights_dir, real_scans):
    model = covidnet.load("vgg11_bn", weights_dir=weights_dir)
    scan = covidnet.read_scan(real_scans[2])
    prepared = model.prepare(scan)
    assert torch.equal(prepared.tensor, build_transform(model.meta)(scan.image))  # the card's preprocessing
    assert prepared.geometry.image_size == scan.image.size
    [analysis] = model.analyze_batch([scan], cam=None, prepared=[prepared])
    assert analysis.probabilities == pytest.approx(model.analyze(scan, cam=None).probabilities, abs=1e-6)
