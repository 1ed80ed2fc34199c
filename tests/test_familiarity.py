"""The unfamiliar-film signal and the lung-share cut, fitted on a tiny real subset of the split (shipped
mobilenet_v2 weights), measured on internal test and ieee8023 films, and on a leave-one-source-out round's left-out
films; the note shown only by the measurement's rule."""

from __future__ import annotations

import dataclasses
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import CXR_ROOT, SHIPPED
from test_cli import covidnet_cli

import covidnet
from covidnet.assessment.card_sections import familiarity_section
from covidnet.assessment.familiarity_measure import MIN_ABOVE, MIN_WRONG_AUROC, RULE, measure_backbone, record_verdict
from covidnet.assessment.familiarity_report import FamiliarityReport
from covidnet.assessment.film_features import film_features
from covidnet.assessment.report_files import find_familiarity_report, write_familiarity_report
from covidnet.assessment.uncertain_report import record_thresholds
from covidnet.data.records import read_metadata
from covidnet.data.splits import split_records
from covidnet.experiments.familiarity_rounds import POOL, measure_round, record_rounds, round_folders
from covidnet.inference.analysis import familiarity_notes
from covidnet.inference.predictor import ungated_predictor
from covidnet.models.artifacts import sha256_of
from covidnet.models.metadata import read_checkpoint_metadata, write_checkpoint_metadata
from covidnet.training.familiarity_fitting import LUNG_SHARE_QUANTILE, fit_from_splits

MODEL = "mobilenet_v2"  # shipped weights (a lung-crop model at 224 pixels)
N = {"train": 40, "val": 30, "test": 16, "external": 64}


@pytest.fixture(scope="module")
def parts():
    if not (CXR_ROOT / "metadata.csv").exists():
        pytest.skip(f"the shared chest X-ray set is not at {CXR_ROOT}")
    split = split_records(read_metadata(CXR_ROOT / "metadata.csv"), SHIPPED / "split.csv")
    return {name: split[name][:: len(split[name]) // n][:n] for name, n in N.items()}


@pytest.fixture(scope="module")
def fitted(parts, tmp_path_factory):
    """A weights folder with the shipped MODEL and lung segmenter, its signal fitted on the tiny subset."""
    folder = tmp_path_factory.mktemp("familiar")
    for path in [*SHIPPED.glob(f"{MODEL}.*"), *SHIPPED.glob("lungs.*")]:
        shutil.copy(path, folder)
    cache = folder / "cache"
    bare = ungated_predictor(MODEL, folder, familiarity=False)
    meta = fit_from_splits(bare, parts["train"], parts["val"], folder, cache)
    return folder, cache, meta


def test_fitting_records_a_verified_signal_with_its_threshold_and_the_lung_cut_from_validation(parts, fitted):
    folder, cache, meta = fitted
    record = meta.familiarity
    assert record.sha256 == sha256_of(folder / record.file) and not record.shown
    assert "40 of 40 training films" in record.fitted_on
    model = covidnet.load(MODEL, weights_dir=folder)
    val = film_features(model, parts["val"], cache, heatmaps=True)
    distances = model.familiarity.distance(torch.from_numpy(val.features)).numpy()
    assert record.threshold == pytest.approx(np.quantile(distances, record.quantile), rel=1e-4)
    shares = val.in_lungs[~np.isnan(val.in_lungs)]
    assert len(shares) >= N["val"] - 2
    assert meta.thresholds.heatmap_in_lungs_below == pytest.approx(np.quantile(shares, LUNG_SHARE_QUANTILE))
    analysis = model.analyze(covidnet.read_scan(parts["val"][0].path), cam="gradcam")
    assert analysis.heatmap_in_lungs == pytest.approx(val.in_lungs[0], abs=1e-3)  # the cut's shares are the app's
    assert analysis.unfamiliarity == pytest.approx(distances[0] / record.threshold, rel=1e-4)
    (folder / record.file).write_bytes(b"tampered")
    try:
        with pytest.raises(covidnet.CheckpointError, match="sha256"):
            covidnet.load(MODEL, weights_dir=folder)
    finally:
        fit_from_splits(model, parts["train"], parts["val"], folder, cache)  # from the cache: no forward pass


def test_choosing_the_uncertain_threshold_keeps_the_lung_cut_and_the_signal(fitted):
    folder, _, meta = fitted
    checked = SimpleNamespace(answered=0.5, accuracy=0.9)
    chosen = SimpleNamespace(threshold=0.7, unseen="unseen films", weights_sha256=meta.sha256, checked=checked)
    report = SimpleNamespace(max_wrong_answered=0.05, bound_confidence=0.95, models={MODEL: chosen})
    assert record_thresholds(report, folder)
    after = read_checkpoint_metadata(folder / f"{MODEL}.json")
    assert after.thresholds.uncertain_below == 0.7 and after.familiarity == meta.familiarity
    assert after.thresholds.uncertain_confidence == 0.95
    assert after.thresholds.heatmap_in_lungs_below == meta.thresholds.heatmap_in_lungs_below


def test_the_note_appears_and_disappears_by_the_measurement_rule(parts, fitted, tmp_path):
    folder, cache, _ = fitted
    result = measure_backbone(covidnet.load(MODEL, weights_dir=folder), parts["test"], parts["external"], cache)
    assert result.n_internal == N["test"] and result.n_unseen == N["external"]
    rule = (
        result.wrong_auroc_unseen["value"] is not None
        and result.wrong_auroc_unseen["value"] >= MIN_WRONG_AUROC
        and result.n_above_unseen >= MIN_ABOVE
        and result.error_above_unseen > result.error_below_unseen
    )
    assert result.shown == bool(rule)
    scans = [covidnet.read_scan(r.path) for r in parts["external"]]
    for shown in (True, False):
        assert record_verdict(dataclasses.replace(result, shown=shown), MODEL, folder)
        analyses = covidnet.load(MODEL, weights_dir=folder).analyze_batch(scans, cam=None)
        unfamiliar = [a.unfamiliarity > 1 for a in analyses]
        noted = [any(w.code == covidnet.WarningCode.UNFAMILIAR_FILM for w in a.warnings) for a in analyses]
        assert any(unfamiliar) and noted == [shown and u for u in unfamiliar]
    record = read_checkpoint_metadata(folder / f"{MODEL}.json").familiarity
    notes = familiarity_notes(2.0, dataclasses.replace(record, shown=True, error_above=0.5, error_below=0.2))
    assert notes[0].message.startswith("This film looks unlike the films CovidNet learned from")
    assert f"{result.n_unseen} films of a source CovidNet never trained on" in notes[0].message
    assert not record_verdict(dataclasses.replace(result, familiarity_sha256="0" * 64), MODEL, folder)

    hidden = {MODEL: dataclasses.replace(result, shown=False)}
    report = FamiliarityReport("internal test", "ieee8023", hidden, RULE)
    write_familiarity_report(report, tmp_path / "familiarity.json")
    assert find_familiarity_report(tmp_path) == report
    section = familiarity_section(report)
    assert RULE in section and f"For {MODEL} the measurement found too little information" in section
    assert familiarity_section(None) == ""


def test_fitting_refuses_a_split_file_the_model_was_not_trained_with(fitted, tmp_path):
    folder, _, meta = fitted
    other = tmp_path / "split.csv"
    other.write_text((SHIPPED / "split.csv").read_text() + "\n")  # the same assignments, another file
    before = (folder / meta.familiarity.file).read_bytes()
    result = covidnet_cli("fit-familiarity", "--backbone", MODEL, "--split-file", other, weights=folder)
    assert result.returncode == 2
    assert f"{MODEL} was trained with a split file of sha256 {meta.training.split_file_sha256[:12]}" in result.stderr
    assert "pass the split file it was trained with (--split-file)" in result.stderr
    assert (folder / meta.familiarity.file).read_bytes() == before  # nothing refitted


def test_a_rounds_signal_is_fitted_without_its_left_out_source_and_measured_on_every_film_of_it(
    parts, fitted, tmp_path
):
    """A round folder as ``covidnet leave-one-out`` leaves it (the shipped weights, recorded as trained without
    NIH): its signal is fitted on its own films, measured on the left-out source's films, and reported."""
    folder, cache, _ = fitted
    left_out = "nih-chestxray8"
    round_folder = tmp_path / "loso" / left_out
    round_folder.mkdir(parents=True)
    for path in [folder / f"{MODEL}.pt", folder / f"{MODEL}.json", *folder.glob("lungs.*")]:
        shutil.copy(path, round_folder)
    meta = read_checkpoint_metadata(round_folder / f"{MODEL}.json")
    settings = {**meta.training.settings, "exclude": [left_out], "holdout": [], "limit": None}
    training = dataclasses.replace(meta.training, settings=settings)
    write_checkpoint_metadata(dataclasses.replace(meta, training=training), round_folder / f"{MODEL}.json")
    split = split_records(read_metadata(CXR_ROOT / "metadata.csv"), SHIPPED / "split.csv")
    nih = {name: [r for r in split[name] if r.dataset == left_out][:6] for name in ("train", "test")}
    round_parts = {**parts, **{name: [*parts[name], *nih[name]] for name in nih}}
    unseen = [r for name in POOL for r in round_parts[name] if r.dataset == left_out]

    measured = measure_round(round_folder, MODEL, round_parts, SHIPPED / "split.csv", cache, answered_at=0.6)
    assert round_folders(tmp_path / "loso", MODEL) == [round_folder]
    assert measured.left_out == left_out and measured.result.n_unseen == len(unseen) >= 12
    assert measured.result.n_internal == len([r for r in round_parts["test"] if r.dataset != left_out])
    trained_on = len([r for r in round_parts["train"] if r.dataset != left_out])
    signal = read_checkpoint_metadata(round_folder / f"{MODEL}.json").familiarity
    assert f"{trained_on} of {trained_on} training films" in signal.fitted_on  # its own films, none left out
    round_model = ungated_predictor(MODEL, round_folder, familiarity=True)  # as measured: no gate
    analyses = round_model.analyze_batch([covidnet.read_scan(r.path) for r in unseen], cam=None)
    given = [(a, r) for a, r in zip(analyses, unseen, strict=True) if max(a.probabilities.values()) >= 0.6]
    wrong = [a for a, r in given if a.prediction != r.label]
    assert (measured.answered_wrong, measured.answered_right) == (len(wrong), len(given) - len(wrong))
    assert measured.answered_wrong_flagged == sum(a.unfamiliarity > 1 for a in wrong)

    assert f"{measured.answered_wrong_flagged} of the {len(wrong)} wrong answers given at 0.60" in measured.summary()
    assert record_rounds([measured], MODEL, round_folder)
    record = read_checkpoint_metadata(round_folder / f"{MODEL}.json").familiarity
    assert record.rounds_wrong_auroc == {left_out: measured.result.wrong_auroc_unseen["value"]}
    assert record.rounds_answered_wrong == len(wrong) and f"{len(unseen)} {left_out} films" in record.rounds_measured_on
    report = FamiliarityReport("internal test", "ieee8023", {MODEL: measured.result}, RULE, rounds={MODEL: [measured]})
    write_familiarity_report(report, tmp_path / "familiarity.json")
    assert find_familiarity_report(tmp_path) == report
    section = familiarity_section(report)
    assert "### On a hospital the recipe never trained on" in section
    assert f"| {MODEL} | {left_out} | {len(unseen)} |" in section
    assert f"the note would have flagged {measured.answered_wrong_flagged}: a film" in section


def test_the_rounds_option_names_a_backbone_it_measures(fitted):
    folder, _, _ = fitted
    result = covidnet_cli("familiarity-report", "--backbone", MODEL, "--rounds", "resnet18=runs/x", weights=folder)
    assert result.returncode == 2
    assert f"--rounds 'resnet18=runs/x': expected BACKBONE=DIR for one of {MODEL}" in result.stderr
