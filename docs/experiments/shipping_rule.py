"""Apply the shipping rule (docs/experiments/README.md, "The shipping rule") to a candidate and the model it would
replace, from their reports; prints the table and the verdict, and exits 0 when the candidate ships.

    python docs/experiments/shipping_rule.py \\
        --incumbent resnet18 weights runs/unseen/loso_r18old \\
        --candidate resnet18 runs/cand_s0/weights runs/unseen/loso_r18new

Each model is NAME, a weights folder (``NAME.json`` with its "uncertain" threshold, and ``reports/internal_test.json``
and ``reports/external.json``) and a folder of leave-one-source-out rounds of its recipe (``<source>/left_out.json``:
``covidnet evaluate`` of the round trained without that source, on every film of it).

On sources the model never trained on, it measures
(a) adult pneumonia found: the pneumonia sensitivity of the rounds without NIH and without RSNA, on those films;
(b) COVID-19 vs pneumonia AUC within one ieee8023 archive (Eurorad, Radiopaedia), on the external report;
(c) wrong and not flagged uncertain: the share of films answered (top probability at or above the model's own
    threshold) and wrong, pooled over ieee8023 and the rounds' left-out films.
A candidate ships when it is no worse on any of (a), (b), (c) and better on at least two, with internal test macro
AUC at least ``FLOOR``. (a) and (b) are the means over their two sources.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from covidnet.assessment.evaluation_report import EvaluationReport
from covidnet.assessment.films import Films
from covidnet.assessment.metric_records import Metrics
from covidnet.assessment.report_files import read_report
from covidnet.classes import TASK
from covidnet.models.metadata import read_checkpoint_metadata

FLOOR = 0.92  # internal test macro AUC: a floor, never the target
ADULT_PNEUMONIA = ("nih-chestxray8", "rsna-lung-opacity")
ARCHIVES = ("eurorad", "radiopaedia")


@dataclass(frozen=True)
class Measured:
    """One model's figures for the rule."""

    name: str
    internal_macro_auc: float
    pneumonia_found: dict[str, float]
    within_archive: dict[str, float]
    threshold: float
    wrong_not_flagged: float  # share of the unseen-source films
    answered: float  # share of the unseen-source films
    films: int
    wrong_at_coverage: dict[float, float] | None = None  # share answered → share answered and wrong (films known)
    confident_mistakes: dict[str, int] | None = None  # "source: truth → answer" among its most confident 10%

    @property
    def a(self) -> float:
        return sum(self.pneumonia_found.values()) / len(self.pneumonia_found)

    @property
    def b(self) -> float:
        return sum(self.within_archive.values()) / len(self.within_archive)


def _only(report: EvaluationReport) -> tuple[str, Metrics]:
    """The name and metrics of the one backbone a report measured."""
    ((name, result),) = report.backbones.items()
    return name, result.metrics


def _top_and_wrong(films: Films, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Model ``name``'s top probability of each film, and whether its top class was wrong."""
    probabilities = films.of_model(name)
    return probabilities.max(axis=1), probabilities.argmax(axis=1) != films.label_indices()


def _selective_at(
    metrics: Metrics, threshold: float, films: Films | None = None, name: str = ""
) -> tuple[float, float]:
    """(share answered, share answered and wrong) at ``threshold``: from the report's films (model ``name``'s
    probabilities) where it has them, else from its selective curve, which holds only its grid's thresholds."""
    if films is not None:
        top, wrong = _top_and_wrong(films, name)
        answered = top >= threshold
        return float(answered.mean()), float((answered & wrong).mean())
    (row,) = [r for r in metrics.selective if abs(r["threshold"] - threshold) < 1e-9]
    wrong = 0.0 if row["accuracy"] is None else row["coverage"] * (1 - row["accuracy"])
    return row["coverage"], wrong


def measure(name: str, weights: Path, rounds: Path) -> Measured:
    """The rule's figures for backbone ``name`` in ``weights``, with its recipe's rounds in ``rounds``."""
    meta = read_checkpoint_metadata(weights / f"{name}.json")
    threshold = meta.thresholds.uncertain_below
    internal = read_report(weights / "reports" / "internal_test.json").backbones[name].metrics
    external_report = read_report(weights / "reports" / "external.json")
    external = external_report.backbones[name].metrics
    left_out = {source: read_report(rounds / source / "left_out.json") for source in ADULT_PNEUMONIA}
    rounds_only = {source: _only(report) for source, report in left_out.items()}
    found = {s: m.per_class[TASK.other_disease].sensitivity.value for s, (_, m) in rounds_only.items()}
    archives = external.covid_vs_pneumonia_auc_by_archive or {}
    within = {a: archives[a].auc.value for a in ARCHIVES}
    sets = [(external, external_report.films, name)]
    sets += [(m, left_out[s].films, model) for s, (model, m) in rounds_only.items()]
    answered = wrong = 0.0
    for metrics, report_films, model in sets:
        share, wrong_share = _selective_at(metrics, threshold, report_films, model)
        answered, wrong = answered + share * metrics.n, wrong + wrong_share * metrics.n
    films = sum(m.n for m, _, _ in sets)
    known = all(f for _, f, _ in sets)
    curve = _risk_coverage([(f, model) for _, f, model in sets]) if known else None
    mistakes = _confident_mistakes([(f, model) for _, f, model in sets]) if known else None
    return Measured(
        name,
        internal.macro_auc.value,
        found,
        within,
        threshold,
        wrong / films,
        answered / films,
        films,
        curve,
        mistakes,
    )


COVERAGES = (0.1, 0.2, 0.3, 0.5)  # shares of the unseen-source films answered, most confident first


def _risk_coverage(sets: list[tuple[Films, str]]) -> dict[float, float]:
    """Pooled over ``sets``: when only the most confident share of the films is answered, the share of all films
    answered and wrong, for each share in ``COVERAGES``."""
    pairs = [_top_and_wrong(films, model) for films, model in sets]
    top, wrong = np.concatenate([t for t, _ in pairs]), np.concatenate([w for _, w in pairs])
    ranked = wrong[np.argsort(-top, kind="stable")]
    return {c: float(ranked[: round(c * len(ranked))].sum() / len(ranked)) for c in COVERAGES}


def _confident_mistakes(sets: list[tuple[Films, str]], share: float = COVERAGES[0]) -> dict[str, int]:
    """The wrong answers among the most confident ``share`` of the pooled films, counted by source, truth and answer."""
    rows = []
    for films, model in sets:
        probabilities = films.of_model(model)
        for p, truth, origin in zip(probabilities, films.label_indices(), films.origins, strict=True):
            rows.append((p.max(), films.classes[truth], films.classes[p.argmax()], origin.split(" ")[0]))
    rows.sort(key=lambda row: -row[0])
    kinds = Counter(f"{o}: {t} → {a}" for _, t, a, o in rows[: round(share * len(rows))] if t != a)
    return dict(kinds.most_common())


def verdict(incumbent: Measured, candidate: Measured) -> tuple[bool, list[str]]:
    """Whether the candidate ships, and why."""
    better = {
        "a": candidate.a > incumbent.a,
        "b": candidate.b > incumbent.b,
        "c": candidate.wrong_not_flagged < incumbent.wrong_not_flagged,
    }
    worse = {
        "a": candidate.a < incumbent.a,
        "b": candidate.b < incumbent.b,
        "c": candidate.wrong_not_flagged > incumbent.wrong_not_flagged,
    }
    reasons = [f"better on {', '.join(k for k, v in better.items() if v) or 'none'}"]
    reasons.append(f"worse on {', '.join(k for k, v in worse.items() if v) or 'none'}")
    floor = candidate.internal_macro_auc >= FLOOR
    reasons.append(f"internal macro AUC {candidate.internal_macro_auc:.3f} {'≥' if floor else '<'} {FLOOR}")
    return floor and not any(worse.values()) and sum(better.values()) >= 2, reasons


def table(rows: list[tuple[str, Measured]]) -> str:
    lines = [
        "| model | internal macro AUC | (a) pneumonia found NIH / RSNA (unseen) | (b) within Eurorad / Radiopaedia | "
        "(c) wrong and not flagged (answered) at its threshold | films |",
        "|---|---|---|---|---|---|",
    ]
    for role, m in rows:
        found = " / ".join(f"{m.pneumonia_found[s]:.2f}" for s in ADULT_PNEUMONIA)
        within = " / ".join(f"{m.within_archive[a]:.3f}" for a in ARCHIVES)
        lines.append(
            f"| {role}: {m.name} | {m.internal_macro_auc:.3f} | {found} (mean {m.a:.2f}) | {within} (mean {m.b:.3f}) | "
            f"{m.wrong_not_flagged:.1%} ({m.answered:.0%}) at {m.threshold:.2f} | {m.films} |"
        )
    return "\n".join(lines)


def rounds_table(folders: list[Path]) -> str:
    """Each recipe's rounds on the films of the source they never saw: what a user of a new hospital meets."""
    lines = [
        "| recipe (rounds folder) | left out | n (normal / pneumonia) | pneumonia found | normal found | "
        "pneumonia-vs-rest AUC | accuracy | answered and wrong at 0.80 / 0.90 / 0.95 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for folder in folders:
        for source in ADULT_PNEUMONIA:
            if not (folder / source / "left_out.json").exists():
                continue
            _, m = _only(read_report(folder / source / "left_out.json"))
            counts = f"{m.class_counts[TASK.normal]} / {m.class_counts[TASK.other_disease]}"
            found = m.per_class[TASK.other_disease].sensitivity.value
            normal = m.per_class[TASK.normal].sensitivity.value
            auc = m.per_class[TASK.other_disease].auc.value
            wrong = " / ".join(
                f"{_selective_at(m, t)[1]:.0%} of {_selective_at(m, t)[0]:.0%}" for t in (0.8, 0.9, 0.95)
            )
            lines.append(
                f"| {folder.name} | {source} | {m.n} ({counts}) | {found:.2f} | "
                f"{'–' if normal is None else f'{normal:.2f}'} | {'–' if auc is None else f'{auc:.3f}'} | "
                f"{m.accuracy.value:.2f} | {wrong} |"
            )
    return "\n".join(lines)


def rounds_risk_table(folders: list[Path]) -> str:
    """Each recipe's rounds pooled over the adult-pneumonia sources: the share of those films answered and wrong when
    only the most confident share is answered, so that recipes compare at equal coverage, whatever their threshold."""
    lines = [
        "| recipe (rounds folder) | films | answered and wrong, most confident "
        + " / ".join(f"{c:.0%}" for c in COVERAGES)
        + " answered |",
        "|---|---|---|",
    ]
    for folder in folders:
        reports = [read_report(folder / s / "left_out.json") for s in ADULT_PNEUMONIA]
        sets = [(report.films, _only(report)[0]) for report in reports]
        curve = _risk_coverage(sets)
        films = sum(len(f.label_indices()) for f, _ in sets)
        lines.append(f"| {folder.name} | {films} | " + " / ".join(f"{w:.1%}" for w in curve.values()) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incumbent", nargs=3, metavar=("NAME", "WEIGHTS", "ROUNDS"))
    parser.add_argument("--candidate", nargs=3, metavar=("NAME", "WEIGHTS", "ROUNDS"))
    parser.add_argument("--rounds", nargs="+", type=Path, help="only print these recipes' rounds on unseen sources")
    args = parser.parse_args()
    if args.rounds:
        print(rounds_table(args.rounds))
        print()
        print(rounds_risk_table(args.rounds))
        return 0
    incumbent = measure(args.incumbent[0], Path(args.incumbent[1]), Path(args.incumbent[2]))
    candidate = measure(args.candidate[0], Path(args.candidate[1]), Path(args.candidate[2]))
    ships, reasons = verdict(incumbent, candidate)
    print(table([("incumbent", incumbent), ("candidate", candidate)]))
    if incumbent.wrong_at_coverage and candidate.wrong_at_coverage:
        print("\nAnswered and wrong (share of the unseen-source films) when each answers only its most confident")
        print(" / ".join(f"{c:.0%}" for c in COVERAGES) + " of them:")
        for role, m in (("incumbent", incumbent), ("candidate", candidate)):
            print(f"  {role}: " + " / ".join(f"{w:.1%}" for w in m.wrong_at_coverage.values()))
        print(f"Wrong answers among each one's most confident {COVERAGES[0]:.0%}, by source, truth → answer:")
        for role, m in (("incumbent", incumbent), ("candidate", candidate)):
            kinds = m.confident_mistakes
            print(f"  {role}: {sum(kinds.values())}: " + ", ".join(f"{k} {n}" for k, n in list(kinds.items())[:4]))
    print(f"\n{'SHIPS' if ships else 'DOES NOT SHIP'}: {'; '.join(reasons)}")
    return 0 if ships else 1


if __name__ == "__main__":
    sys.exit(main())
