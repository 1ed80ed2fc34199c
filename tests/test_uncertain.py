"""The "uncertain" threshold chosen on films from sources a model never trained on: the rule, the patient-disjoint
halves, and `covidnet calibrate-uncertain` end to end (report, metadata, ensemble)."""

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import covidnet
from covidnet.assessment.films import Films, joined
from covidnet.assessment.report_files import find_uncertain_report, read_report, read_uncertain_report, write_report
from covidnet.assessment.thresholds import CHECK, CHOOSE, GRID, Pool, choose_threshold, half_of, wrong_answered_bound
from covidnet.assessment.unseen_facts import answer_limits
from covidnet.cli import main
from covidnet.models.checkpoints import checkpoint_paths
from covidnet.models.metadata import read_checkpoint_metadata

ROOT = Path(__file__).resolve().parents[1]


def films(top: np.ndarray, wrong: np.ndarray, *, origin: str = "unseen", backbones=("resnet18",)) -> Films:
    """Films of class 0 whose top probability is ``top``; where ``wrong``, that top is on class 1."""
    rows = np.column_stack([top, (1 - top) / 2, (1 - top) / 2])
    rows[wrong] = rows[wrong][:, [1, 0, 2]]
    n = len(top)
    return Films(
        sha256=[f"{k:064x}" for k in range(n)],
        labels=[covidnet.CLASSES[0]] * n,
        origins=[origin] * n,
        patients=[f"{origin}-patient-{k}" for k in range(n)],
        probabilities={name: rows.tolist() for name in backbones},
    )


def pool_of(scale: int) -> Pool:
    """``100 * scale`` films: top 0.55 for 40% (half of them wrong), 0.75 for 30% (a fifth wrong), 0.95 for 30%
    (one in fifteen wrong)."""
    top = np.repeat([0.55, 0.75, 0.95], [40 * scale, 30 * scale, 30 * scale])
    wrong = np.zeros(100 * scale, dtype=bool)
    wrong[np.r_[np.arange(20 * scale), 40 * scale + np.arange(6 * scale), 70 * scale + np.arange(2 * scale)]] = True
    return Pool.of([(films(top, wrong), "resnet18")])


def test_the_threshold_is_the_lowest_at_which_at_most_5_percent_of_films_are_answered_and_wrong():
    pool = pool_of(10)
    at = {round(p.threshold, 2): p for p in pool.curve()}
    assert at[0.5].answered == 1.0 and at[0.5].wrong_answered == pytest.approx(0.28)
    assert at[0.6].answered == pytest.approx(0.6) and at[0.6].wrong_answered == pytest.approx(0.08)
    assert at[0.8].accuracy == pytest.approx(28 / 30) and at[0.8].wrong_answered == pytest.approx(0.02)
    assert choose_threshold(pool.curve()) == pytest.approx(0.76)  # 0.75 still answers 8% wrong
    assert choose_threshold(pool.curve(), 0.10) == pytest.approx(0.56)  # 8.0% of 1,000: bound 9.6%
    assert choose_threshold(pool.curve(), 0.0) == max(GRID)  # no number of films shows "never wrong"


def test_the_bound_must_hold_with_confidence_so_few_films_cannot_show_it():
    """2% answered and wrong on 100 films does not show at most 5% (upper bound 6.2%); answering nothing does."""
    pool = pool_of(1)
    at = {round(p.threshold, 2): p for p in pool.curve()}
    assert at[0.76].wrong_answered == pytest.approx(0.02)
    assert wrong_answered_bound(at[0.76]) == pytest.approx(0.0616, abs=5e-4)
    assert wrong_answered_bound(at[0.96]) == pytest.approx(1 - 0.05 ** (1 / 100))  # none answered: 2.95%
    assert choose_threshold(pool.curve()) == pytest.approx(0.96)


def test_a_patient_falls_in_one_half_only_and_the_halves_are_about_even():
    patients = [f"p{k}" for k in range(2000)]
    halves = [half_of(p) for p in patients]
    assert {half_of(p) for p in ["p7"] * 5} == {half_of("p7")}
    assert 0.45 < halves.count(CHOOSE) / len(halves) < 0.55 and set(halves) == {CHOOSE, CHECK}


@pytest.fixture()
def weights_with_reports(tmp_path):
    """The shipped metadata in a temporary weights folder, with an internal and an unseen report whose films are
    made up (the committed reports' shape and weights, other probabilities)."""
    weights = tmp_path / "weights"
    weights.mkdir()
    for name in covidnet.trained_backbones():
        shutil.copy(checkpoint_paths(name)[1], weights)
    committed = read_report(ROOT / "weights" / "reports" / "internal_test.json")
    names = list(committed.backbones)
    ours = {n: read_checkpoint_metadata(weights / f"{n}.json").sha256 for n in names}
    ours["vgg11_bn"] = "0" * 64  # a report of other weights than these: its threshold is not recorded
    backbones = {n: replace(b, weights_sha256=ours[n]) for n, b in committed.backbones.items()}
    internal = replace(committed, backbones=backbones)
    rng = np.random.default_rng(0)
    top = rng.uniform(0.4, 1.0, 400)
    unseen = films(top, rng.uniform(size=400) > top, origin="hospital-x", backbones=names)  # wrong more when unsure
    seen = films(rng.uniform(0.8, 1.0, 400), rng.uniform(size=400) < 0.05, backbones=names)
    write_report(replace(internal, films=unseen), tmp_path / "unseen.json")
    write_report(replace(internal, films=seen), tmp_path / "internal.json")
    return weights, tmp_path


def test_calibrate_uncertain_records_each_threshold_and_writes_the_curves(weights_with_reports, capsys):
    weights, folder = weights_with_reports
    argv = ["--weights-dir", str(weights), "calibrate-uncertain", "--unseen", str(folder / "unseen.json")]
    argv += ["--internal", str(folder / "internal.json"), "--out", str(weights / "reports" / "uncertain.json")]
    assert main(argv) == 0

    report = find_uncertain_report(weights / "reports")
    assert set(report.models) == {*read_report(folder / "unseen.json").backbones, "ensemble"}
    resnet = report.models["resnet18"]
    choose_half = Pool.of([(read_report(folder / "unseen.json").films, "resnet18")]).half(CHOOSE)
    assert wrong_answered_bound(resnet.chosen) <= 0.05 < wrong_answered_bound(choose_half.at(resnet.threshold - 0.01))
    assert resnet.checked.n + resnet.chosen.n == 400 and set(resnet.checked_by_source) == {"hospital-x"}
    assert resnet.internal_curve[0].answered == 1.0 and len(resnet.unseen_curve) == len(resnet.internal_curve)
    meta = read_checkpoint_metadata(weights / "resnet18.json")
    assert meta.thresholds.uncertain_below == resnet.threshold and meta.thresholds.uncertain_max_wrong == 0.05
    assert meta.thresholds.uncertain_confidence == report.bound_confidence == 0.95  # the bound, as it was chosen
    assert meta.thresholds.answered_share == resnet.checked.answered
    assert "hospital-x" in meta.thresholds.uncertain_chosen_on
    vgg = read_checkpoint_metadata(weights / "vgg11_bn.json").thresholds
    assert vgg == read_checkpoint_metadata(checkpoint_paths("vgg11_bn")[1]).thresholds  # other weights: untouched
    assert report.models["ensemble"].weights_sha256 is None
    # the ensemble's threshold holds only for exactly the backbones and weights it was chosen for
    chosen_for = {n: m.weights_sha256 for n, m in report.models.items() if m.weights_sha256 is not None}
    assert report.ensemble_threshold(chosen_for) == report.models["ensemble"].threshold
    assert report.ensemble_threshold({**chosen_for, "vgg11_bn": "1" * 64}) is None
    assert report.ensemble_threshold({n: s for n, s in chosen_for.items() if n != "vgg11_bn"}) is None
    assert covidnet.ensemble_threshold(list(chosen_for), weights) is None  # vgg11_bn's weights here are others
    agreement = report.agreement
    assert agreement.n == 400 and 0 <= agreement.all_agree <= 1
    # the measured limit beside an answer: how often that answer was right on the unseen films (all of class 0)
    said, other = covidnet.CLASSES[0], covidnet.CLASSES[1]
    at = next(p for p in resnet.unseen_curve if p.threshold == resnet.threshold)
    right = resnet.answers[said][said]
    assert right == round(at.n * at.answered * at.accuracy) == sum(resnet.answers[said].values())
    assert f"on {right} films and was right on {right} (100%)." in answer_limits("resnet18", said, weights)
    wrong = resnet.answers[other][said]
    assert answer_limits("resnet18", other, weights).endswith(f"really {covidnet.display_name(said)} {wrong}.")


def test_reports_without_films_are_refused_with_a_reason(tmp_path, capsys):
    committed = ROOT / "docs" / "experiments" / "i20_shipped" / "reports"
    argv = ["calibrate-uncertain", "--unseen", str(committed / "external.json")]
    argv += ["--internal", str(committed / "internal_test.json"), "--out", str(tmp_path / "u.json")]
    assert main(argv) != 0
    assert "per-film probabilities" in capsys.readouterr().err


def test_joined_films_take_each_members_probabilities_in_one_film_order():
    top = np.array([0.9, 0.8, 0.7])
    a = films(top, np.zeros(3, dtype=bool), backbones=("resnet18",))
    b = films(top[::-1], np.zeros(3, dtype=bool), backbones=("round-model",))
    b = replace(b, sha256=b.sha256[::-1])  # the same films listed the other way round
    both = joined({"resnet18": (a, "resnet18"), "vgg11_bn": (b, "round-model")})
    assert both.sha256 == a.sha256 and set(both.probabilities) == {"resnet18", "vgg11_bn"}
    np.testing.assert_allclose(both.of_model("vgg11_bn"), a.of_model("resnet18"))
    np.testing.assert_allclose(both.of_model("ensemble"), a.of_model("resnet18"))
    with pytest.raises(covidnet.CovidNetError, match="not the same films"):
        joined({"resnet18": (a, "resnet18"), "vgg11_bn": (replace(b, sha256=["f" * 64] * 3), "round-model")})


def test_the_ensemble_is_calibrated_on_its_members_rounds_too_when_every_member_has_them(tmp_path, capsys):
    """With each shipped backbone's recipe rounds, the ensemble's unseen films are ieee8023 plus the rounds' left-out
    films, each read by the mean of the four round models."""
    weights = tmp_path / "weights"
    weights.mkdir()
    for name in covidnet.trained_backbones():
        shutil.copy(checkpoint_paths(name)[1], weights)
    rounds = ROOT / "docs" / "experiments" / "unseen_rounds"
    recipes = {"resnet18": "loso_r18old", "densenet121": "loso_dnold", "vgg11_bn": "loso_vggold"}
    recipes["mobilenet_v2"] = "loso_tl"
    argv = ["--weights-dir", str(weights), "calibrate-uncertain", "--out", str(tmp_path / "uncertain.json")]
    argv += [a for name, folder in recipes.items() for a in ("--rounds", f"{name}={rounds / folder}")]
    assert main(argv) == 0

    ensemble = read_uncertain_report(tmp_path / "uncertain.json").models["ensemble"]
    sources = ("nih-chestxray8", "rsna-lung-opacity")
    external = read_report(ROOT / "weights" / "reports" / "external.json").films
    probabilities, labels = [external.of_model("ensemble")], [external.label_indices()]
    for source in sources:  # each film read by the mean of the four recipes' round models that never saw its source
        members = [read_report(rounds / f / source / "left_out.json").films for f in recipes.values()]
        assert all(m.sha256 == members[0].sha256 for m in members)  # the same films in the same order
        probabilities.append(np.mean([m.of_model(next(iter(m.probabilities))) for m in members], axis=0))
        labels.append(members[0].label_indices())
    probabilities, labels = np.concatenate(probabilities), np.concatenate(labels)
    assert ensemble.chosen.n + ensemble.checked.n == len(labels) == 484 + 669 + 974
    assert {o.split()[0] for o in ensemble.checked_by_source} == {"ieee8023", *sources}
    assert "the mean of the members' leave-one-source-out rounds" in ensemble.unseen
    answered = probabilities.max(axis=1) >= ensemble.threshold
    said, classes = probabilities.argmax(axis=1), covidnet.CLASSES
    expected = {
        classes[c]: {classes[t]: int((answered & (said == c) & (labels == t)).sum()) for t in range(3)}
        for c in range(3)
    }
    assert ensemble.answers == expected
