"""The Streamlit app, every page, through streamlit.testing.v1.AppTest with real uploads."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from conftest import SHIPPED
from scan_files import colour_photo, one_lung_field
from streamlit.testing.v1 import AppTest
from test_cli import covidnet_cli

import covidnet
import ui
from covidnet.assessment.metrics import summarise
from covidnet.assessment.report_files import find_familiarity_report
from covidnet.assessment.report_schema import SCHEMA_VERSION
from covidnet.models.checkpoints import verify_checkpoint
from covidnet.notices import WarningCode

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGES = ["pages/analyse.py", "pages/compare.py", "pages/batch.py", "pages/model_card.py", "pages/about.py"]
TIMEOUT = 120


@pytest.fixture(autouse=True)
def fresh_caches():
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def with_weights(weights_dir, monkeypatch):
    monkeypatch.setenv("COVIDNET_WEIGHTS", str(weights_dir))
    return weights_dir


def page(path: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    if path != PAGES[0]:
        at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def upload(at: AppTest, *files: tuple[str, bytes]) -> AppTest:
    mime = "application/octet-stream"
    at.file_uploader[0].set_value([(n, d, mime) for n, d in files] if len(files) > 1 else (*files[0], mime))
    at.run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "subheader", "warning", "error", "info", "caption") for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("path", PAGES)
def test_every_page_says_plainly_when_no_weights_are_installed(path, tmp_path, monkeypatch):
    monkeypatch.setenv("COVIDNET_WEIGHTS", str(tmp_path))
    at = page(path)
    assert "not a medical device" in texts(at)
    if path != "pages/about.py":
        assert at.info and ("No trained" in at.info[0].value or "no measured results" in at.info[0].value)
    else:
        assert "with trained weights here: none yet" in texts(at)


def test_about_names_the_backbones_that_have_weights(with_weights):
    assert f"with trained weights here: {', '.join(covidnet.backbones())}" in texts(page(PAGES[4]))


@pytest.mark.slow
def test_analyse_shows_probabilities_and_heatmap_for_an_upload(with_weights, real_scans):
    at = upload(page(PAGES[0]), (real_scans[0].name, real_scans[0].read_bytes()))
    shown = texts(at)
    assert any(covidnet.display_name(c) in shown for c in covidnet.CLASSES)
    assert len(at.get("image")) == 3 and len(at.get("plotly_chart")) == 1  # the scan, the heatmap, its colour scale
    assert len(at.get("download_button")) == 2
    assert at.sidebar.selectbox[0].value == covidnet.default_backbone(covidnet.backbones())
    at.sidebar.selectbox[0].set_value("densenet121").run()
    at.sidebar.selectbox[1].set_value("layercam").run()
    at.sidebar.selectbox[2].set_value("Pneumonia").run()
    assert not at.exception
    assert at.get("image")[1].captions == ["layercam for Pneumonia (densenet121)"]
    assert re.search(r"\d+% of the heatmap is inside the lungs", texts(at))


def test_analyse_explains_its_signs_with_the_figures_measured_for_the_shipped_weights(monkeypatch, real_scans):
    monkeypatch.setenv("COVIDNET_WEIGHTS", str(SHIPPED))
    at = page(PAGES[0])
    at.sidebar.selectbox[0].set_value("mobilenet_v2").run()
    at = upload(at, (real_scans[2].name, real_scans[2].read_bytes()))
    expander = next(e for e in at.expander if e.label == "What these signs mean")
    text = "\n".join(m.value for m in expander.markdown)
    meta = covidnet.load("mobilenet_v2", weights_dir=SHIPPED).meta
    t, measured = meta.thresholds, find_familiarity_report(SHIPPED / "reports").backbones["mobilenet_v2"]
    assert meta.familiarity.sha256 == measured.familiarity_sha256  # the report measured the shipped signal
    assert any(f"the evidence for **{covidnet.display_name(c)}**" in text for c in covidnet.CLASSES)
    cut, tail = t.heatmap_in_lungs_below, t.heatmap_in_lungs_quantile
    assert f"below {cut:.0%}, the worst {tail:.0%} of validation films" in text
    assert f"its median was {t.heatmap_in_lungs_median:.0%}" in text
    assert f"less than {t.uncertain_below:.0%}" in text
    assert t.uncertain_max_wrong is None or f"wrong on at most {t.uncertain_max_wrong:.0%} of all films" in text
    assert t.uncertain_confidence is None or f"of all films, with {t.uncertain_confidence:.0%} confidence" in text
    assert f"a right one {measured.wrong_auroc_unseen['value']:.0%} of the time" in text
    assert ("so the note is not shown" in text) == (not measured.shown)
    rounds = find_familiarity_report(SHIPPED / "reports").rounds["mobilenet_v2"]  # its recipe's rounds
    for r in rounds:
        assert f"{r.result.wrong_auroc_unseen['value']:.0%} ({r.left_out})" in text
    given = f"flagged {sum(r.answered_wrong_flagged for r in rounds)} of the {sum(r.answered_wrong for r in rounds)}"
    assert f'{given} wrong answers given at this model\'s "uncertain" threshold' in text
    assert expander.get("image")[0].captions == ["Colour scale: blue = little evidence, red = the most"]


def test_an_uncertain_answer_says_where_its_threshold_was_chosen_and_the_bound_it_keeps(monkeypatch):
    monkeypatch.setenv("COVIDNET_WEIGHTS", str(SHIPPED))
    sample = Path(covidnet.__file__).parent / "sample_scans" / "covid_cxnet_055.jpg"  # uncertain for mobilenet_v2
    at = page(PAGES[0])
    at.sidebar.selectbox[0].set_value("mobilenet_v2").run()
    at = upload(at, (sample.name, sample.read_bytes()))
    t = covidnet.load("mobilenet_v2", weights_dir=SHIPPED).meta.thresholds
    warning = next(w.value for w in at.warning if w.value.startswith("**Uncertain.**"))
    assert f"Below {t.uncertain_below:.0%} this model does not answer: the threshold was chosen on " in warning
    assert float(re.search(r"has only ([\d.]+)%", warning).group(1)) < 100 * t.uncertain_below  # never "98%. Below 98%"
    assert t.uncertain_chosen_on in warning
    assert (
        f"wrong on at most {t.uncertain_max_wrong:.0%} of all films, with {t.uncertain_confidence:.0%} confidence"
        in warning
    )


def test_the_lung_outline_can_be_switched_off(with_weights, real_scans):
    at = upload(page(PAGES[0]), (real_scans[1].name, real_scans[1].read_bytes()))
    outlined = at.get("image")[1].proto.imgs[0].url
    at.sidebar.toggle[0].set_value(False).run()
    assert not at.exception and at.get("image")[1].proto.imgs[0].url != outlined


def test_analyse_shows_a_clear_error_for_a_file_that_is_not_a_scan(with_weights):
    at = upload(page(PAGES[0]), ("notes.png", b"hello, this is text"))
    assert at.error and "not an image or DICOM file" in at.error[0].value


def test_a_bundled_sample_can_be_analysed_with_one_click(with_weights):
    at = page(PAGES[0])
    at.selectbox(key="analyse-sample").set_value(at.selectbox(key="analyse-sample").options[1]).run()
    assert not at.exception
    assert "Sample from the" in texts(at) and len(at.get("plotly_chart")) == 1


def test_a_sample_says_when_the_model_disagrees_with_its_label(with_weights):
    from covidnet.io.samples import samples

    at = page(PAGES[0])
    backbone = at.sidebar.selectbox[0].value
    model = covidnet.load(backbone, weights_dir=with_weights)
    seen = set()
    for option, sample in zip(at.selectbox(key="analyse-sample").options[1:], samples(), strict=True):
        at.selectbox(key="analyse-sample").set_value(option).run()
        result = model.analyze(sample.path, cam=None)
        disagrees = not result.uncertain and not result.flagged and result.prediction != sample.label
        assert ("disagrees with this sample's label" in texts(at)) == disagrees, sample.file
        seen.add(disagrees)
    assert True in seen  # the random test weights disagree with at least one label


@pytest.mark.slow
def test_compare_runs_every_backbone_side_by_side(with_weights, real_scans):
    at = upload(page(PAGES[1]), (real_scans[2].name, real_scans[2].read_bytes()))
    shown = texts(at)
    assert "Ensemble:" in shown and ("give the same class" in shown or "give different classes" in shown)
    assert "not evidence that the answer is right" in shown  # agreement is never reported as reassurance
    assert len(at.get("plotly_chart")) == 1  # every backbone and the ensemble on one scale
    captions = [image.caption for element in at.get("image") for image in element.proto.imgs]
    assert f"{real_scans[2].name} (original)" in captions
    for name in covidnet.backbones():
        assert f"**{name}** — " in shown
    assert len(re.findall(r"\d+% of the heatmap is inside the lungs", shown)) == len(covidnet.backbones())


@pytest.mark.slow
def test_compare_puts_each_models_unfamiliar_film_note_under_that_model(monkeypatch):
    from covidnet.io.samples import samples

    monkeypatch.setenv("COVIDNET_WEIGHTS", str(SHIPPED))
    sample = next(s for s in samples() if s.file == "pneumonia_nih_00000193.jpg")
    noted = {
        b for b in covidnet.backbones()
        if any(w.code.value == "unfamiliar_film" for w in covidnet.load(b).analyze(sample.path, cam=None).warnings)
    }  # fmt: skip
    assert noted and noted != set(covidnet.backbones())  # the shipped signal flags this film for some models only
    at = upload(page(PAGES[1]), (sample.file, sample.path.read_bytes()))
    for backbone in covidnet.backbones():
        column = next(c for c in at.columns if any(m.value.startswith(f"**{backbone}**") for m in c.markdown))
        notes = [w.value for w in column.warning if "looks unlike the films CovidNet learned from" in w.value]
        assert len(notes) == (backbone in noted), backbone
    assert sum("looks unlike the films CovidNet learned from" in w.value for w in at.warning) == len(noted)


def test_batch_gives_one_row_per_scan_and_backbone_and_keeps_going_past_errors(with_weights, real_scans):
    files = [(p.name, p.read_bytes()) for p in real_scans[:2]] + [("broken.jpg", b"\xff\xd8 nope")]
    at = upload(page(PAGES[2]), *files)
    table = at.dataframe[0].value
    assert len(table) == 2 * (len(covidnet.backbones()) + 1) + 1  # each backbone and their ensemble, one error row
    assert table["error"].notna().sum() == 1
    assert len(at.get("download_button")) == 1


def test_batch_scores_files_once_across_reruns_on_the_clis_batched_path(with_weights, real_scans, monkeypatch):
    import ui

    batches = []
    original = ui.score_blocks
    monkeypatch.setattr(ui, "score_blocks", lambda *a, **k: (batches.append(k["batch_size"]), original(*a, **k))[1])
    at = upload(page(PAGES[2]), *[(p.name, p.read_bytes()) for p in real_scans])
    first = at.dataframe[0].value
    at.run()  # any rerun, e.g. after the download
    assert batches == [ui.BATCH_SIZE] and at.dataframe[0].value.equals(first)
    rows = covidnet.score(real_scans, backbones=covidnet.backbones(), weights_dir=with_weights)
    for cells, row in zip(first.to_dict("records"), rows, strict=True):
        assert (cells["scan"], cells["backbone"]) == (Path(row["scan"]).name, row["backbone"])
        shown = [cells[f"p_{c}"] for c in covidnet.CLASSES]
        assert shown == pytest.approx([row["probabilities"][c] for c in covidnet.CLASSES], abs=1e-4)


def test_batch_refuses_what_the_gate_refuses_calls_a_lateral_view_lateral_and_downloads_the_clis_csv(
    with_weights, real_scans, tmp_path, monkeypatch
):
    files = [("dog.png", colour_photo()), ("side.png", one_lung_field(real_scans[2]))]
    files.append(("chest.jpg", real_scans[0].read_bytes()))
    downloads = []
    original = st.download_button
    monkeypatch.setattr(
        st, "download_button", lambda label, data, **k: (downloads.append(data), original(label, data, **k))[1]
    )
    at = upload(page(PAGES[2]), *files)
    table = at.dataframe[0].value
    per_scan = len(covidnet.backbones()) + 1
    assert list(table["scan"]) == [name for name, _ in files for _ in range(per_scan)]
    assert list(table["backbone"]) == [*covidnet.backbones(), "ensemble"] * 3
    verdicts = ["not_chest_xray"] * per_scan + ["lateral_view"] * per_scan + [""] * per_scan
    assert list(table["flagged"].fillna("")) == verdicts
    refused, accepted = table[table["flagged"].notna()], table[table["flagged"].isna()]
    probabilities = [f"p_{c}" for c in covidnet.CLASSES]
    assert refused["prediction"].isna().all() and refused[probabilities].isna().all().all()
    assert (
        accepted["prediction"].isin([covidnet.display_name(c) for c in covidnet.CLASSES]).all()
        and accepted[probabilities].notna().all().all()
    )
    assert at.error and "refused 2 of 3 scans (dog.png, side.png)" in at.error[0].value
    assert "A lateral (side) view?" in table["warnings"].iloc[per_scan]
    for name, data in files:
        (tmp_path / name).write_bytes(data)
    monkeypatch.chdir(tmp_path)
    cli = covidnet_cli("--weights-dir", with_weights, "predict", *[n for n, _ in files], "--out", "rows.csv")
    assert cli.returncode == 0, cli.stderr
    assert downloads == [(tmp_path / "rows.csv").read_bytes().decode()]
    at.checkbox(key="batch-anyway").check().run()
    shown = at.dataframe[0].value
    assert not at.exception and shown[probabilities].notna().all().all() and shown["prediction"].isna().sum() == 10


def test_batch_measures_heatmaps_against_the_lungs_when_asked(monkeypatch, real_scans):
    monkeypatch.setenv("COVIDNET_WEIGHTS", str(SHIPPED))  # each shipped model's lung-share cut, set on validation
    at = upload(page(PAGES[2]), (real_scans[1].name, real_scans[1].read_bytes()))
    assert at.dataframe[0].value["heatmap_in_lungs"].isna().all()
    at.toggle[0].set_value(True).run()
    table = at.dataframe[0].value
    members, combined = table[table["backbone"] != "ensemble"], table[table["backbone"] == "ensemble"]
    assert not at.exception and members["heatmap_in_lungs"].between(0, 1).all()
    assert combined["heatmap_in_lungs"].isna().all()
    for backbone, share, notes in zip(
        members["backbone"], members["heatmap_in_lungs"], members["warnings"], strict=True
    ):
        cut = covidnet.load(backbone, weights_dir=SHIPPED).meta.thresholds.heatmap_in_lungs_below
        assert ("lies outside the lungs" in notes) == (share < cut), backbone


def test_model_card_renders_reports_with_charts(with_weights):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 90)
    probabilities = np.eye(3)[labels] * 0.6 + rng.dirichlet([1, 1, 1], 90) * 0.4
    metrics = summarise(probabilities, labels)
    metrics["ece"] = {"before_temperature": 0.1, "after_temperature": metrics["ece"]}
    metrics["shortcuts"] = {
        "accuracy": 0.9, "accuracy_lungs_masked": 0.8, "accuracy_top_and_corners_masked": 0.88,
        "majority_class_accuracy": 0.4, "source_probe": {"accuracy": 0.9, "majority_baseline": 0.5, "sources": []},
        "saliency_sanity": {"median_spearman": 0.1, "max_spearman": 0.3, "n": 4},
        "accuracy_outside_lungs_masked": 0.5, "accuracy_on_those": 0.9, "lung_masked_n": 88,
        "heatmap_in_lungs": {
            k: {"n": 30, "median": 0.45, "share_above_half": 0.4, "lung_area_median": 0.3}
            for k in ("all", "covid", "normal", "pneumonia")
        },
    }  # fmt: skip
    share = {"n": 90, "flagged": 3, "flagged_share": 3 / 90}
    metrics["gate"] = {**share, "fitted": True, "by_source": {"hospital/a": share}, "by_class": {"covid": share}}
    report = {
        "schema_version": SCHEMA_VERSION,
        "data": "synthetic",
        "n": 90,
        "backbones": {"resnet18": metrics},
        "ensemble": summarise(probabilities, labels),
    }
    (with_weights / "reports").mkdir(exist_ok=True)
    for name in ("internal_test", "external"):
        (with_weights / "reports" / f"{name}.json").write_text(json.dumps(report))
    try:
        at = page(PAGES[3])
        assert len(at.get("plotly_chart")) == 7
        assert "with the lungs blacked out" in texts(at)
        assert "| External source (never trained on) | resnet18 | 30 | 0.45 (40%) |" in texts(at)
        assert "only 45% of its mass inside the lungs" in texts(at)
        assert "| source hospital/a | 90 | 3.3% |" in texts(at)
        assert "gate has not been measured yet" in texts(at)
        at.selectbox[0].set_value("ensemble").run()
        assert not at.exception
    finally:
        shutil.rmtree(with_weights / "reports")


def test_a_colour_photo_is_flagged_and_its_probabilities_hidden_until_asked(with_weights):
    import io

    from PIL import Image

    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)).save(buffer, "PNG")
    at = upload(page(PAGES[0]), ("holiday.png", buffer.getvalue()))
    assert at.error and "colour" in at.error[0].value
    assert len(at.get("plotly_chart")) == 0
    at.checkbox(key="analyse-anyway").check().run()
    assert not at.exception and len(at.get("plotly_chart")) == 1


def disclaimers(at: AppTest) -> int:
    """How many elements of the page, sidebar included, show the disclaimer."""
    kinds = ("markdown", "caption", "warning", "info", "error", "success", "toast")
    return sum(ui.DISCLAIMER.split("**")[1] in str(e.value) for kind in kinds for e in at.get(kind))


@pytest.mark.parametrize("path", PAGES)
def test_every_page_shows_the_disclaimer_exactly_once(path, tmp_path, monkeypatch):
    monkeypatch.setenv("COVIDNET_WEIGHTS", str(tmp_path))
    assert disclaimers(page(path)) == 1


def test_about_counts_the_training_images_from_the_shipped_metadata(monkeypatch):
    monkeypatch.delenv("COVIDNET_WEIGHTS", raising=False)
    shipped = [verify_checkpoint(name) for name in covidnet.trained_backbones()]
    text = texts(page(PAGES[4]))
    assert shipped and all(meta.training is not None for meta in shipped)
    for meta in shipped:
        total, per_class = sum(meta.training.train_images.values()), meta.training.train_images
        assert f" {total:,} " in text and all(f"{n:,} {covidnet.display_name(c)}" in text for c, n in per_class.items())
    assert "about 5,300" not in text


def half_films(scans: list[Path]) -> list[bytes]:
    """The left and right halves of real frontal films, as PNG: one lung field each, as a lateral view shows."""
    import io

    halves = []
    for path in scans:
        image = covidnet.read_scan(path).image
        width, height = image.size
        for box in ((0, 0, width // 2, height), (width // 2, 0, width, height)):
            buffer = io.BytesIO()
            image.crop(box).save(buffer, "PNG")
            halves.append(buffer.getvalue())
    return halves


def test_a_lateral_films_banner_and_its_heatmap_caption_agree(with_weights, real_scans):
    backbone = covidnet.default_backbone(covidnet.backbones())
    model = covidnet.load(backbone, weights_dir=with_weights)
    lateral = next(
        data
        for data in half_films(real_scans)
        if WarningCode.LATERAL_VIEW in [w.code for w in model.analyze(data, cam=None).warnings]
    )
    at = upload(page(PAGES[0]), ("side.png", lateral))
    assert at.error and "found one lung field" in at.error[0].value
    at.checkbox(key="analyse-anyway").check().run()
    assert not at.exception
    captions = [c.value for c in at.caption]
    assert "No frontal pair of lungs was found, so the heatmap is not measured against the lungs." in captions
    assert not any("No lung fields were found" in c for c in captions)
