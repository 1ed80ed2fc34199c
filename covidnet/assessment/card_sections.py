"""The model card's optional result sections and sentences (by source, leave one source out, within archive,
the gate's corpus and lung check), each empty or a placeholder when its report is missing."""

from __future__ import annotations

from covidnet.assessment.evaluation_report import EvaluationReport
from covidnet.assessment.familiarity_measure import MIN_WRONG_AUROC
from covidnet.assessment.familiarity_report import FamiliarityReport, RoundFamiliarity
from covidnet.assessment.gate_report import GateReport
from covidnet.assessment.leave_one_out_report import LeaveOneOutReport
from covidnet.assessment.metrics import CONFIDENCE
from covidnet.assessment.tables import leave_one_out_table, source_table, within_archive_counts
from covidnet.classes import display_name
from covidnet.models.metadata import CheckpointMetadata

FEW_IMAGES = 30  # a class with fewer images than this in a data set has very uncertain metrics there


def by_source_section(reports: dict[str, EvaluationReport]) -> str:
    """The per-source results, when the reports measured them."""
    table = source_table(reports)
    if not table:
        return ""
    return f"""
### By data source
Each data source's scans on their own (no intervals; the macro AUC is over the classes the source holds, "–" for a
source with one class). A source that scores far below the others is one the model reads differently.

{table}
"""


def leave_one_out_section(report: LeaveOneOutReport | None) -> str:
    """The leave-one-source-out table, when it was measured."""
    if report is None:
        return ""
    settings = report.settings
    return f"""
### Leave one source out
`covidnet leave-one-out`: {report.backbone} trained once per data source with two or more labels, without that
source (nor was it used to choose the epoch), on a shorter schedule than the shipped models: {_schedule(settings)}; then
measured on every scan of the left-out source, next to the same model's validation and internal test figures
without it. The gap is what meeting a new source costs.

{leave_one_out_table(report)}
"""


def _schedule(settings: dict) -> str:
    """A training run's settings in words."""
    share = f"one training image in {settings['limit']}" if settings.get("limit") else "every training image"
    return (
        f"{settings['epochs']} epochs on {share}, crop {settings['crop']}, intensity {settings['intensity']}, "
        f"augmentation {settings['augment']}, balance {settings['balance']}, adversary {settings['adversary']}"
    )


def within_archive_note(reports: dict[str, EvaluationReport]) -> str:
    """What the within-archive COVID-19 vs pneumonia AUC is and the films it is measured on (empty when no report
    has it)."""
    counts = within_archive_counts(reports)
    if not counts:
        return ""
    return f"""
The COVID-19 vs pneumonia AUC ranks the COVID-19 probability on the COVID-19 and pneumonia images only. Pooled over
a source whose archives hold different labels it partly tells the archives apart, so it is also given within each
ieee8023 archive that holds both ("–" where a report lacks it), on these films: {counts}.
"""


def few_external_images(reports: dict[str, EvaluationReport]) -> str:
    """A warning when a class has few images in the external test set."""
    if "external" not in reports:
        return ""
    label, n = min(reports["external"].ensemble.metrics.class_counts.items(), key=lambda kv: kv[1])
    if n >= FEW_IMAGES:
        return ""
    return f"The external source has only {n} {label} images: its {label}-class metrics are very uncertain."


def gate_corpus(gate_report: GateReport | None) -> str:
    """What the gate report measured the gate on."""
    if gate_report is None:
        return "a corpus of images that are not chest X-rays, once `covidnet gate-report` has run"
    kinds = ", ".join(f"{kind} {n}" for kind, n in gate_report.kinds.items())
    return (
        f"{gate_report.n} images that are not chest X-rays, built offline by `tests/gate_corpus.py` from "
        f"scikit-image and scikit-learn photos and synthetic images ({kinds}), by `covidnet gate-report`"
    )


def lung_check_sentence(gate_report: GateReport | None) -> str:
    """What the gate's lung check does on its own, as ``covidnet gate-report`` counted it."""
    check = gate_report.lung_check if gate_report else None
    if not check:
        return "The lung check has not been measured on its own yet (`covidnet gate-report` with the lung segmenter)."
    frontal, corpus = check["frontal"], check["corpus"]
    flagged = frontal["no_lung_fields"] + frontal["lateral_view"]
    caught = corpus["no_lung_fields"] + corpus["lateral_view"]
    return (
        f"The lung check on its own flags {flagged} of the {frontal['n']:,} frontal chest X-rays of "
        f'`{check["frontal_data"]}` ({flagged / frontal["n"]:.2%}: {frontal["no_lung_fields"]} "no lung fields '
        f'found", {frontal["lateral_view"]} wrongly called lateral views) and {caught} of the {corpus["n"]} '
        "non-X-ray images. How many real lateral views it catches is not measured: the shared data holds none "
        "(its curators left them out) and none can be downloaded here."
    )


def most_flagged(reports: dict[str, EvaluationReport]) -> str:
    """Which true class the gates flag most often on the internal test split, and what that means."""
    if "internal_test" not in reports:
        return ""
    shares: dict[str, list[float]] = {}
    for result in reports["internal_test"].backbones.values():
        for label, row in result.gate.by_class.items():
            shares.setdefault(label, []).append(row.flagged_share)
    if not shares:
        return ""
    label = max(shares, key=lambda c: sum(shares[c]) / len(shares[c]))
    if not any(shares[label]):
        return ""
    name = display_name(label)
    return (
        f" {name} images are flagged more often than the others: a flagged scan is not evidence against {name}, and "
        'the app offers its probabilities behind a "show anyway" choice.'
    )


def lung_share_cuts(metas: list[CheckpointMetadata]) -> str:
    """When the app warns that a heatmap lies outside the lungs: each model's cut, as its metadata records it."""
    cuts = [(m.backbone, m.thresholds) for m in metas if m.thresholds.heatmap_in_lungs_below is not None]
    if not cuts:
        return "The app gives no lung-share warning until `covidnet fit-familiarity` has set its cut."
    films = {t.heatmap_in_lungs_chosen_on for _, t in cuts}
    if len(films) == 1:
        basis = f"{films.pop()}; `covidnet fit-familiarity`"
        listed = ", ".join(f"{name} {t.heatmap_in_lungs_below:.0%}" for name, t in cuts)
    else:  # models fitted on different validation films (each on the split it was trained with)
        basis = "each model's own, `covidnet fit-familiarity`"
        listed = ", ".join(
            f"{name} {t.heatmap_in_lungs_below:.0%} ({t.heatmap_in_lungs_chosen_on})" for name, t in cuts
        )
    quantile = cuts[0][1].heatmap_in_lungs_quantile
    return (
        f"The app warns when a heatmap's share inside the lungs falls in the worst {quantile:.0%} "
        f"of validation films ({basis}): below {listed}."
    )


def familiarity_section(report: FamiliarityReport | None) -> str:
    """The unfamiliar-film signal as ``covidnet familiarity-report`` measured it, and whether the app shows it."""
    if report is None:
        return ""
    rows = [
        "| model | threshold (val. quantile) | unseen vs internal AUROC | wrong-answer AUROC, unseen | wrong-answer "
        "AUROC, internal | unseen films above threshold | error above / below, unseen | internal films above "
        "| error above / below, internal | note shown | wrong-answer AUROC of the top probability, unseen |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report.backbones.items():
        rows.append(
            f"| {name} | {r.threshold:.3f} ({r.quantile:.0%}) | {_auroc(r.unseen_vs_internal_auroc)} | "
            f"{_auroc(r.wrong_auroc_unseen)} | {_auroc(r.wrong_auroc_internal)} | {r.n_above_unseen} of {r.n_unseen} | "
            f"{_share(r.error_above_unseen)} / {_share(r.error_below_unseen)} | {r.share_above_internal:.0%} of "
            f"{r.n_internal} | {_share(r.error_above_internal)} / {_share(r.error_below_internal)} | "
            f"{'yes' if r.shown else 'no'} | {_auroc(r.wrong_auroc_unseen_top_probability)} |"
        )
    hidden = [name for name, r in report.backbones.items() if not r.shown]
    why = (
        f" For {', '.join(hidden)} the measurement found too little information, so the app does not show the note."
        if hidden
        else ""
    )
    return f"""
## Unfamiliar films
How far a film's penultimate features lie from those of the training films (the mean cosine distance to its nearest
training films, fitted by `covidnet fit-familiarity`; a film is *unfamiliar* above the validation films' quantile
named in the table). For comparison, the last AUROC column ranks the same wrong answers by the top class probability
alone (what "uncertain" uses). Measured by `covidnet familiarity-report` on the {report.unseen} against the
{report.internal} (AUROCs with {CONFIDENCE:.0%} bootstrap intervals): does the distance tell the unseen source apart,
does it predict a wrong answer, and how often answers above and below the threshold are wrong.

Rule: {report.rule}.{why}{_against_confidence(report)}

{chr(10).join(rows)}
{_rounds_part(report)}"""


def rounds_table(rows: list[tuple[str, RoundFamiliarity]], *, label: str = "model") -> str:
    """Leave-one-source-out rounds' unfamiliar-film signal on the sources they never saw, one row each, named by
    ``label`` (the model, or the recipe)."""
    lines = [
        f"| {label} | round without | films | flagged unfamiliar | wrong-answer AUROC: distance / top probability | "
        "error above / below | wrong answers given, flagged | right answers given, flagged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        m = r.result
        given = "" if r.answered_at is None else f" (at {r.answered_at:.2f})"
        lines.append(
            f"| {name} | {r.left_out} | {m.n_unseen} | {m.n_above_unseen} | {_auroc(m.wrong_auroc_unseen)} / "
            f"{_auroc(m.wrong_auroc_unseen_top_probability)} | {_share(m.error_above_unseen)} / "
            f"{_share(m.error_below_unseen)} | {r.answered_wrong_flagged} of {r.answered_wrong}{given} | "
            f"{r.answered_right_flagged} of {r.answered_right} |"
        )
    return "\n".join(lines)


def _rounds_part(report: FamiliarityReport) -> str:
    """The signal on each model's recipe's leave-one-source-out rounds, when ``--rounds`` measured them."""
    rows = [(name, r) for name, rounds in report.rounds.items() for r in rounds]
    if not rows:
        return ""
    aurocs = [r.result.wrong_auroc_unseen["value"] for _, r in rows]
    below_chance = sum(a is not None and a < 0.5 for a in aurocs)
    meeting = sum(a is not None and a >= MIN_WRONG_AUROC for a in aurocs)
    wrong, flagged = sum(r.answered_wrong for _, r in rows), sum(r.answered_wrong_flagged for _, r in rows)
    verdict = (
        f"In {below_chance} of {len(aurocs)} rounds the distance ranks wrong answers above right ones less often than "
        f"chance, and in {meeting} it reaches the rule's {MIN_WRONG_AUROC}. Of the {wrong} wrong answers the rounds "
        f"gave, the note would have flagged {flagged}: a film from a hospital none of the training films came from "
        "can look familiar and still be answered wrongly."
    )
    return f"""
### On a hospital the recipe never trained on
Each model's recipe was also trained without one adult source at a time (the leave-one-source-out rounds that
"uncertain" is chosen on). Each round's model got the signal fitted in the same way on its own training and validation
films, and was measured on every film of the source it never saw, against its internal test films (`covidnet
familiarity-report --rounds`). Answers are counted as given when their top probability reaches the shipped model's
"uncertain" threshold (in brackets). {verdict}

{rounds_table(rows)}
"""


def _against_confidence(report: FamiliarityReport) -> str:
    """Which models' top class probability ranks the unseen source's wrong answers at least as well as the distance."""
    matched = [
        name
        for name, r in report.backbones.items()
        if None not in (r.wrong_auroc_unseen["value"], r.wrong_auroc_unseen_top_probability["value"])
        and r.wrong_auroc_unseen_top_probability["value"] >= r.wrong_auroc_unseen["value"]
    ]
    if not matched:
        return ""
    return (
        f" For {', '.join(matched)} the top class probability alone ranks those wrong answers at least as well as the "
        "distance: there the note adds a second, overlapping reason for doubt rather than new information."
    )


def _auroc(metric: dict) -> str:
    if metric["value"] is None:
        return "n/a"
    return f"{metric['value']:.2f} ({metric['low']:.2f}–{metric['high']:.2f})"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"
