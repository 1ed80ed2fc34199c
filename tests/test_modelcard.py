"""The model card is generated from reports: tables, findings and the README block, with no figure of its own;
the reports are read and written in one place, with a schema version."""

import ast
import copy
import dataclasses
import functools
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_cxr

import covidnet
from covidnet.assessment import card_data, card_sections, card_uncertain, check_tables, model_card, tables
from covidnet.assessment.evaluation_report import EvaluationReport
from covidnet.assessment.gate_report import GateReport
from covidnet.assessment.leave_one_out_report import LeaveOneOutReport
from covidnet.assessment.metrics import summarise
from covidnet.assessment.model_card import RESULTS_END, RESULTS_START, write_model_card
from covidnet.assessment.report_files import (
    read_familiarity_report,
    read_gate_report,
    read_leave_one_out_report,
    read_report,
    read_uncertain_report,
    write_familiarity_report,
    write_gate_report,
    write_leave_one_out_report,
    write_report,
    write_uncertain_report,
)
from covidnet.assessment.report_schema import (
    FAMILIARITY_REPORT,
    LEAVE_ONE_OUT_REPORT,
    SCHEMA_VERSION,
    UNCERTAIN_REPORT,
    ReportError,
)
from covidnet.data.records import Record
from covidnet.data.splits import SplitEntry
from covidnet.models.checkpoints import checkpoint_paths
from covidnet.models.metadata import read_checkpoint_metadata

ROOT = Path(__file__).resolve().parents[1]
SPLIT = ROOT / "weights" / "split.csv"
COMMITTED_REPORTS = sorted((ROOT / "weights" / "reports").glob("*.json"))


@functools.cache
def made_up_summary() -> dict:
    """``summarise`` on made-up probabilities (computed once: the bootstrap takes a while)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 120)
    return summarise(np.eye(3)[labels] * 0.7 + rng.dirichlet([1, 1, 1], 120) * 0.3, labels)


def report_record(weights: Path, *, lungs_masked: float) -> dict:
    """An evaluation report's JSON, as `covidnet evaluate` writes it, on made-up probabilities."""
    backbones, summary = {}, copy.deepcopy(made_up_summary())
    share = {"n": 120, "flagged": 1, "flagged_share": 1 / 120}
    for name in covidnet.backbones():
        m = copy.deepcopy(summary)
        m["ece"] = {"before_temperature": 0.2, "after_temperature": m["ece"]}
        m["weights_sha256"] = read_checkpoint_metadata(checkpoint_paths(name, weights)[1]).sha256
        m["gate"] = {**share, "fitted": True, "by_source": {"hospital/a": share}, "by_class": {"covid": share}}
        m["shortcuts"] = {
            "accuracy": 0.95, "accuracy_lungs_masked": lungs_masked, "accuracy_top_and_corners_masked": 0.9,
            "majority_class_accuracy": 0.36, "source_probe": {"accuracy": 0.8, "majority_baseline": 0.4, "sources": []},
            "saliency_sanity": {"median_spearman": 0.1, "max_spearman": 0.2, "n": 3},
        "accuracy_outside_lungs_masked": 0.5, "accuracy_on_those": 0.9, "lung_masked_n": 88,
            "heatmap_in_lungs": {
                k: {"n": 30, "median": 0.45, "share_above_half": 0.4, "lung_area_median": 0.3}
                for k in ("all", "covid", "normal", "pneumonia")
            },
        }  # fmt: skip
        backbones[name] = m
    return {"data": "synthetic", "n": 120, "backbones": backbones, "ensemble": {**summary, "members": []}}


def test_model_card_and_readme_table_come_from_the_reports_and_touch_no_metadata(weights_dir, tmp_path):
    metadata = shared_cxr() / "metadata.csv"
    weights = tmp_path / "weights"
    shutil.copytree(weights_dir, weights, ignore=shutil.ignore_patterns("reports"))
    reports = weights / "reports"
    for name, lungs_masked in (("internal_test", 0.9), ("external", 0.4), ("validation", 0.4)):
        write_report(
            EvaluationReport.from_dict(report_record(weights, lungs_masked=lungs_masked)), reports / f"{name}.json"
        )
    corpus = {
        "gate_fitted": True,
        "gate_of": "resnet18",
        "flagged_share": 0.5,
        "flagged_share_by_kind": {"noise": 0.5},
    }
    gate = GateReport.from_dict({"n": 7, "kinds": {"noise": 7}, "backbones": {"resnet18": corpus}})
    write_gate_report(gate, reports / "gate.json")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{RESULTS_START}\nold\n{RESULTS_END}\n\nafter\n")
    out = tmp_path / "model_card.md"
    metadata_before = {p.name: p.read_bytes() for p in weights.glob("*.json")}

    markdown = write_model_card(reports, weights, metadata, SPLIT, out, readme)

    assert out.read_text() == markdown
    for section in ("## Intended use", "Not for clinical use", "## Data", "## Results", "## Shortcut checks",
                    "## Chest X-ray gate", "## Known failure modes"):  # fmt: skip
        assert section in markdown
    assert "CC BY 4.0" in markdown and "external" in markdown
    assert "with the lungs blacked out" in markdown  # 0.9 > 0.36 + margin on the internal test
    assert markdown.count("with the lungs blacked out") == len(covidnet.backbones())  # not on the external set
    assert "non-X-ray images flagged (n = 7)" in markdown and "on 7 images that are not chest X-rays" in markdown
    assert "COVID-19 images are flagged more often" in markdown  # the only class with flags in by_class
    text = readme.read_text()
    assert "old" not in text and "| data | model |" in text and text.endswith("after\n")
    assert {p.name: p.read_bytes() for p in weights.glob("*.json")} == metadata_before  # evaluate records, not this
    assert "### By data source" not in markdown and "### Leave one source out" not in markdown  # not measured
    external = read_report(reports / "external.json").ensemble.metrics.covid_vs_pneumonia_auc.value
    assert "**No training source holds both COVID-19 and pneumonia images**" in markdown  # the shared data
    assert f"the ensemble's COVID-19 vs pneumonia AUC is {external:.3f}." in markdown


def test_the_covid_pneumonia_confound_is_named_only_when_no_training_source_holds_both():
    def records(*labels_by_dataset):
        return [Record(Path(f"{d}{i}.jpg"), label, sha256=f"{d}{i}", dataset=d)
                for i, (d, label) in enumerate(labels_by_dataset)]  # fmt: skip

    apart = records(("cxnet", "covid"), ("nih", "pneumonia"), ("nih", "normal"))
    together = records(("cxnet", "covid"), ("nih", "pneumonia"), ("cxnet", "pneumonia"))
    train = {r.sha256: SplitEntry(0, "train", 1) for r in apart + together}
    assert "cxnet 1; pneumonia: nih 1" in card_data.covid_pneumonia_confound(apart, train, {})
    assert card_data.covid_pneumonia_confound(together, train, {}) == ""
    held_out = {**train, "cxnet2": SplitEntry(0, "external", 1)}  # the source with both is not trained on
    assert card_data.covid_pneumonia_confound(together, held_out, {}) != ""


def test_model_card_shows_per_source_results_and_leave_one_source_out_when_measured(weights_dir, tmp_path):
    metadata = shared_cxr() / "metadata.csv"
    weights = tmp_path / "weights"
    shutil.copytree(weights_dir, weights, ignore=shutil.ignore_patterns("reports"))
    reports = weights / "reports"
    record = report_record(weights, lungs_masked=0.5)
    nih = {"n": 40, "class_counts": {"covid": 0, "normal": 25, "pneumonia": 15}, "accuracy": 0.625,
           "macro_auc": 0.7125, "sensitivity": {"covid": None, "normal": 0.8, "pneumonia": 0.3333}}  # fmt: skip
    record["backbones"]["resnet18"]["by_source"] = {"nih-chestxray8 (repo/nih)": nih}
    write_report(EvaluationReport.from_dict(record), reports / "internal_test.json")
    left_out = {"trained_on": ["kermany (repo/k)"], "validation_macro_auc": 0.9375, "internal_test_macro_auc": 0.9125,
                "left_out": nih, "seconds": 420.0,
                "train_images": {"covid": 2, "normal": 700, "pneumonia": 650}}  # fmt: skip
    settings = {"epochs": 3, "limit": 2, "crop": "lungs", "intensity": "equalize", "augment": "source-cues",
                "balance": "source-label", "adversary": 0.3}  # fmt: skip
    loso = LeaveOneOutReport.from_dict({"backbone": "resnet18", "settings": settings,
                                        "sources": {"nih-chestxray8": left_out}})  # fmt: skip
    write_leave_one_out_report(loso, reports / f"{LEAVE_ONE_OUT_REPORT}.json")

    markdown = write_model_card(reports, weights, metadata, SPLIT, tmp_path / "card.md", None)

    by_source = markdown.split("### By data source")[1]
    assert "| Internal test (patient-level split) | resnet18 | nih-chestxray8 (repo/nih) | 40 (0 / 25 / 15) | 0.625 " \
           "| 0.713 | normal 0.80, pneumonia 0.33 |" in by_source  # fmt: skip
    leave_one_out = markdown.split("### Leave one source out")[1]
    row = "| nih-chestxray8 | 7 min | 2 / 700 / 650 | 40 (0 / 25 / 15) | 0.625 | 0.713 | normal 0.80, pneumonia 0.33 " \
          "| 0.938 | 0.912 |"  # fmt: skip
    assert row in leave_one_out
    assert "3 epochs on one training image in 2, crop lungs, intensity equalize" in " ".join(leave_one_out.split())


# --- the reports -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", COMMITTED_REPORTS, ids=lambda p: p.name)
def test_committed_reports_read_and_write_back_unchanged(path, tmp_path):
    special = {
        "gate": (read_gate_report, write_gate_report),
        LEAVE_ONE_OUT_REPORT: (read_leave_one_out_report, write_leave_one_out_report),
        FAMILIARITY_REPORT: (read_familiarity_report, write_familiarity_report),
        UNCERTAIN_REPORT: (read_uncertain_report, write_uncertain_report),
    }
    reader, writer = special.get(path.stem, (read_report, write_report))
    report = reader(path)
    assert report.schema_version == SCHEMA_VERSION
    writer(report, tmp_path / path.name)
    assert (tmp_path / path.name).read_text() == path.read_text()


def with_archives(record: dict) -> dict:
    """``record`` (a report's JSON) with a within-archive COVID-19 vs pneumonia AUC for every model."""
    by_archive = {
        "eurorad": {"n_covid": 28, "n_pneumonia": 29, "auc": {"value": 0.61, "low": 0.45, "high": 0.76}},
        "radiopaedia": {"n_covid": 64, "n_pneumonia": 31, "auc": {"value": 0.72, "low": 0.6, "high": 0.83}},
    }
    record = copy.deepcopy(record)
    for m in [*record["backbones"].values(), record["ensemble"]]:
        m["covid_vs_pneumonia_auc_by_archive"] = copy.deepcopy(by_archive)
    return record


def test_a_report_reads_and_writes_back_with_and_without_the_within_archive_auc(weights_dir, tmp_path):
    without = json.loads(json.dumps(report_record(weights_dir, lungs_masked=0.5)))  # as JSON holds it
    for record in (without, with_archives(without)):
        path = tmp_path / "report.json"
        path.write_text(json.dumps({**record, "schema_version": SCHEMA_VERSION}))
        report = read_report(path)
        write_report(report, tmp_path / "again.json")
        assert read_report(tmp_path / "again.json") == report
        assert json.loads((tmp_path / "again.json").read_text())["ensemble"].keys() == record["ensemble"].keys()
    eurorad = report.ensemble.metrics.covid_vs_pneumonia_auc_by_archive["eurorad"]
    assert (eurorad.n_covid, eurorad.n_pneumonia, eurorad.auc.value, eurorad.auc.high) == (28, 29, 0.61, 0.76)
    assert set(report.backbones["resnet18"].metrics.covid_vs_pneumonia_auc_by_archive) == {"eurorad", "radiopaedia"}
    path.write_text(json.dumps({**without, "schema_version": SCHEMA_VERSION}))
    assert all(m.covid_vs_pneumonia_auc_by_archive is None for m in read_report(path).models().values())
    broken = with_archives(without)
    del broken["ensemble"]["covid_vs_pneumonia_auc_by_archive"]["eurorad"]["n_covid"]
    path.write_text(json.dumps({**broken, "schema_version": SCHEMA_VERSION}))
    with pytest.raises(ReportError, match=r"covid_vs_pneumonia_auc_by_archive\.eurorad: missing keys n_covid"):
        read_report(path)


def test_the_results_table_shows_the_within_archive_auc_and_a_dash_where_a_report_lacks_it(weights_dir):
    without = report_record(weights_dir, lungs_masked=0.5)
    reports = {
        "internal_test": EvaluationReport.from_dict(without),
        "external": EvaluationReport.from_dict(with_archives(without)),
    }

    table = tables.results_table(reports).splitlines()

    assert "| COVID-19 vs pneumonia AUC within archive (Eurorad / Radiopaedia) | ECE |" in table[0]
    assert all(len(line.split("|")) == len(table[0].split("|")) for line in table)
    assert all("| – |" in line for line in table if line.startswith("| Internal test"))
    external = [line for line in table if line.startswith("| External")]
    assert external and all("| 0.610 (0.450–0.760) / 0.720 (0.600–0.830) |" in line for line in external)
    assert "COVID-19 vs pneumonia AUC within archive |" in tables.results_table(
        {"internal_test": reports["internal_test"]}
    )
    counts = tables.within_archive_counts(reports)
    assert counts == "Eurorad 28 COVID-19 / 29 pneumonia, Radiopaedia 64 COVID-19 / 31 pneumonia in the external " \
                     "source (never trained on)"  # fmt: skip
    assert f"on these films: {counts}." in card_sections.within_archive_note(reports)
    assert card_sections.within_archive_note({"internal_test": reports["internal_test"]}) == ""


def test_a_backbone_and_the_ensemble_both_have_one_calibrated_ece():
    report = read_report(ROOT / "weights" / "reports" / "internal_test.json")
    record = json.loads((ROOT / "weights" / "reports" / "internal_test.json").read_text())
    resnet = report.backbones["resnet18"]
    assert resnet.metrics.ece == record["backbones"]["resnet18"]["ece"]["after_temperature"]
    assert resnet.ece_before_temperature == record["backbones"]["resnet18"]["ece"]["before_temperature"]
    assert report.ensemble.metrics.ece == record["ensemble"]["ece"]
    assert all(isinstance(m.ece, float) for m in report.models().values())


def test_a_report_without_a_version_is_version_1_and_other_versions_or_shapes_are_refused(tmp_path):
    record = json.loads((ROOT / "weights" / "reports" / "external.json").read_text())
    path = tmp_path / "r.json"
    path.write_text(json.dumps({k: v for k, v in record.items() if k != "schema_version"}))
    with pytest.raises(ReportError, match="schema version 1;"):  # its occlusion checks used a fixed box
        read_report(path)
    path.write_text(json.dumps({**record, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(ReportError, match="schema version"):
        read_report(path)
    broken = copy.deepcopy(record)
    broken["backbones"]["resnet18"]["ece"] = 0.1  # a backbone's ECE must say before and after temperature
    path.write_text(json.dumps(broken))
    with pytest.raises(ReportError, match="before_temperature"):
        read_report(path)
    path.write_text(json.dumps({k: v for k, v in record.items() if k != "backbones"}))
    with pytest.raises(ReportError, match="missing keys backbones"):
        read_report(path)
    with pytest.raises(ReportError, match="Cannot read"):
        read_report(tmp_path / "missing.json")


# --- no figure of its own ------------------------------------------------------------------------------------------

# A count (two or more digits, or with a thousands separator, or a decimal), a percentage, or a commit-like hex id.
FIGURE = re.compile(
    r"(?<![\w.,])(?:\d{1,3}(?:,\d{3})+|\d+\.\d+|\d{2,})(?!\w)"
    r"|\d+(?:\.\d+)?\s?%"
    r"|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{7,40}\b"
)
# Genuine constants that may stay in the prose, each with why.
ALLOWED = {
    "2018": "publication year of the cited papers (Adebayo et al. 2018, Lee et al. 2018)",
    "2021": "publication year of the cited paper (DeGrave et al. 2021)",
    "COVID-19": "the disease's name",
}


def prose_literals(module) -> list[str]:
    """The string literals of ``module``'s source, without docstrings and f-string format specs."""
    tree = ast.parse(Path(module.__file__).read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    specs = {id(part) for node in ast.walk(tree) if isinstance(node, ast.FormattedValue) and node.format_spec
             for part in ast.walk(node.format_spec)}  # fmt: skip
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings | specs
    ]


def figures(text: str) -> list[str]:
    for allowed in ALLOWED:
        text = re.sub(rf"(?<!\w){re.escape(allowed)}(?!\w)", " ", text)
    return FIGURE.findall(text)


def test_the_figure_detector_catches_the_kinds_of_stale_figures_seen_before():
    for stale in ("on 174 images", "flagged only 82% of", "committed in e8a82f0)", "8,188 de-duplicated",
                  "correlation 0.99 in", "split 70/15/15", "64-bit perceptual hash"):  # fmt: skip
        assert figures(stale), stale
    for fine in ("ieee8023", "ChestX-ray8", "≤ 4 bits", "(n = ", "Adebayo et al. 2018", "| COVID-19 |", "sha256"):
        assert not figures(fine), fine


@pytest.mark.parametrize(
    "module", [model_card, card_data, card_sections, card_uncertain, tables, check_tables], ids=lambda m: m.__name__
)
def test_the_generator_and_the_tables_hold_no_figure_of_their_own(module):
    found = {literal: figures(literal) for literal in prose_literals(module) if figures(literal)}
    assert not found, f"figures written into {module.__name__}'s text; take them from the reports or data: {found}"


def test_the_lung_share_cuts_name_each_models_validation_films_when_they_differ():
    shipped = [covidnet.load(name).meta for name in ("resnet18", "mobilenet_v2")]

    def fitted_on(meta, films: str):
        return dataclasses.replace(
            meta, thresholds=dataclasses.replace(meta.thresholds, heatmap_in_lungs_chosen_on=films)
        )

    cuts = [f"{m.backbone} {m.thresholds.heatmap_in_lungs_below:.0%}" for m in shipped]
    differ = card_sections.lung_share_cuts([fitted_on(shipped[0], "900 films"), fitted_on(shipped[1], "1300 films")])
    assert (
        f"(each model's own, `covidnet fit-familiarity`): below {cuts[0]} (900 films), {cuts[1]} (1300 films)."
        in differ
    )
    same = card_sections.lung_share_cuts([fitted_on(m, "1300 films") for m in shipped])
    assert f"(1300 films; `covidnet fit-familiarity`): below {cuts[0]}, {cuts[1]}." in same
