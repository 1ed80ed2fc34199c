"""What the "uncertain" calibration measured on films from sources the models never trained on, looked up for the
app and the scoring pipeline: the ensemble's threshold for the backbones a user combines, how often the backbones
agree there, and how often each answer a backbone gives was right there."""

from __future__ import annotations

from pathlib import Path

from covidnet.assessment.report_files import find_uncertain_report
from covidnet.assessment.uncertain_report import Agreement
from covidnet.classes import display_name
from covidnet.models.checkpoints import checkpoint_paths, default_weights_dir
from covidnet.models.metadata import read_checkpoint_metadata


def ensemble_threshold(members: list[str], weights_dir: Path | None = None) -> float | None:
    """The calibrated "uncertain" threshold of the ensemble of ``members`` (their weights in ``weights_dir``), or
    None when ``reports/uncertain.json`` chose none for exactly those backbones and weights."""
    folder = Path(weights_dir or default_weights_dir())
    report = find_uncertain_report(folder / "reports")
    if report is None:
        return None
    shas = {name: read_checkpoint_metadata(checkpoint_paths(name, folder)[1]).sha256 for name in members}
    return report.ensemble_threshold(shas)


def unseen_agreement(weights_dir: Path | None = None) -> Agreement | None:
    """How often every backbone gave the same answer on unseen-source films, and how often it was right then
    (``reports/uncertain.json``); None when it was not measured."""
    report = find_uncertain_report(Path(weights_dir or default_weights_dir()) / "reports")
    return None if report is None else report.agreement


MIN_ANSWERS = 10  # fewer answered films of a class than this: too few to state how often that answer was right


def answer_limits(backbone: str, said: str, weights_dir: Path | None = None) -> str | None:
    """In words, how often ``backbone``'s answer ``said`` was right on unseen-source films, and what those films
    really were when it was wrong; None when that was not measured or too few films got that answer."""
    report = find_uncertain_report(Path(weights_dir or default_weights_dir()) / "reports")
    calibration = None if report is None else report.models.get(backbone)
    counts = {} if calibration is None else calibration.answers.get(said, {})
    answered = sum(counts.values())
    if answered < MIN_ANSWERS:
        return None
    others = sorted(((n, true) for true, n in counts.items() if true != said and n), reverse=True)
    wrong = ", ".join(f"{display_name(true)} {n}" for n, true in others)
    return (
        f"Measured limit: on films from sources {backbone} never trained on, it answered "
        f"{display_name(said)} (above its threshold) on {answered} films and was right on {counts.get(said, 0)} "
        f"({counts.get(said, 0) / answered:.0%})" + (f"; the others were really {wrong}." if wrong else ".")
    )
