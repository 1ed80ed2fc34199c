"""What the calibration measured about the ensemble, looked up for the app and the scoring pipeline: its
"uncertain" threshold for the backbones a user combines, and how often the backbones agree on unseen sources."""

from __future__ import annotations

from pathlib import Path

from covidnet.assessment.report_files import find_uncertain_report
from covidnet.assessment.uncertain_report import Agreement
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
