"""The model card document: ``docs/model_card.md`` and the README's results table, generated from the
evaluation reports, the checkpoints' metadata and the data's metadata. Never written by hand.

Every figure in the card comes from those (the tables from ``covidnet.assessment.tables`` and ``check_tables``,
the sentences from ``card_data`` and ``card_sections``); the generator writes nothing but the document and the
README block (``covidnet evaluate`` records metrics and thresholds in the checkpoints' metadata).

The prose template is kept whole here so that it reads like the card it produces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from covidnet.assessment.card_data import (
    covid_pneumonia_confound,
    data_summary,
    paediatric_confound,
    split_rule,
    upscaled_sources,
)
from covidnet.assessment.card_sections import (
    by_source_section,
    familiarity_section,
    few_external_images,
    gate_corpus,
    leave_one_out_section,
    lung_check_sentence,
    lung_share_cuts,
    most_flagged,
    within_archive_note,
)
from covidnet.assessment.card_uncertain import changes_section, uncertain_section
from covidnet.assessment.check_tables import (
    gate_breakdown_table,
    gate_table,
    heatmap_in_lungs_table,
    shortcut_findings,
    shortcut_table,
)
from covidnet.assessment.evaluation_report import EvaluationReport
from covidnet.assessment.familiarity_report import FamiliarityReport
from covidnet.assessment.gate_report import GateReport
from covidnet.assessment.leave_one_out_report import LeaveOneOutReport
from covidnet.assessment.metrics import BOOTSTRAP_ROUNDS, CONFIDENCE
from covidnet.assessment.report_files import (
    find_familiarity_report,
    find_gate_report,
    find_leave_one_out_report,
    find_uncertain_report,
    read_reports,
)
from covidnet.assessment.shortcuts import HALF, PROBE_FOLDS, SALIENCY_MAX_SPEARMAN, TOP_BAND
from covidnet.assessment.tables import data_tables, model_table, results_table, shown
from covidnet.assessment.uncertain_report import UncertainReport
from covidnet.classes import CLASSES, display_name
from covidnet.data.records import read_metadata
from covidnet.data.splits import NEAR_DUPLICATE_BITS, read_split_file
from covidnet.inference.feature_gate import GATE_QUANTILE
from covidnet.models.checkpoints import checkpoint_paths
from covidnet.models.metadata import CheckpointMetadata, read_checkpoint_metadata
from covidnet.models.pretrained import how_started
from covidnet.models.registry import backbones

RESULTS_START, RESULTS_END = "<!-- results:start -->", "<!-- results:end -->"


@dataclass(frozen=True)
class CardExtras:
    """Sections shown only when their reports exist: "uncertain" on unseen sources, and the previous release."""

    uncertain: UncertainReport | None = None
    previous: dict[str, EvaluationReport] = field(default_factory=dict)
    familiarity: FamiliarityReport | None = None


def write_model_card(
    reports_dir: Path,
    weights_dir: Path,
    metadata_csv: Path,
    split_file: Path,
    out: Path,
    readme: Path | None,
    previous_dir: Path | None = None,
) -> str:
    """Generate ``out`` (and the README's results table) from the reports; return the Markdown. ``previous_dir``
    holds the previous release's reports, for the "What changed" section."""
    reports = shown(read_reports(reports_dir))
    gate_report = find_gate_report(reports_dir)
    paths = sorted(checkpoint_paths(name, weights_dir)[1] for name in backbones())  # not other models' metadata
    metas = [read_checkpoint_metadata(p) for p in paths if p.exists()]
    leave_one_out = find_leave_one_out_report(reports_dir)
    extra = CardExtras(
        uncertain=find_uncertain_report(reports_dir),
        previous=read_reports(previous_dir) if previous_dir else {},
        familiarity=find_familiarity_report(reports_dir),
    )
    markdown = render(reports, metas, metadata_csv, split_file, gate_report, leave_one_out, extra)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown)
    if readme is not None:
        write_readme_results(readme, results_table(reports))
    return markdown


def write_readme_results(readme: Path, table: str) -> None:
    """Replace the README's results block (between ``RESULTS_START`` and ``RESULTS_END``) with ``table``."""
    text = readme.read_text()
    block = f"{RESULTS_START}\n{table}\n{RESULTS_END}"
    pattern = re.compile(re.escape(RESULTS_START) + ".*?" + re.escape(RESULTS_END), re.S)
    readme.write_text(pattern.sub(lambda _: block, text) if pattern.search(text) else text + "\n" + block + "\n")


def render(
    reports: dict[str, EvaluationReport],
    metas: list[CheckpointMetadata],
    metadata_csv: Path,
    split_file: Path,
    gate_report: GateReport | None,
    leave_one_out: LeaveOneOutReport | None = None,
    extra: CardExtras | None = None,
) -> str:
    """The whole model card in Markdown."""
    extra = extra or CardExtras()
    records = read_metadata(metadata_csv)
    assigned = read_split_file(split_file)
    provenance, split_counts = data_tables(metadata_csv, split_file)
    findings = shortcut_findings(reports) or ["No backbone kept its accuracy with the lungs hidden."]
    classes = ", ".join(display_name(c) for c in CLASSES)
    quantile = next((m.gate.quantile for m in metas if m.gate is not None), GATE_QUANTILE)
    failure_modes = [
        paediatric_confound(records, assigned),
        covid_pneumonia_confound(records, assigned, reports),
        upscaled_sources(metadata_csv),
        few_external_images(reports),
        "Images from papers and social media (ieee8023, COVID-CXNet) may carry arrows, text and crops.",
        "Out of scope: lateral views, CT, paediatric COVID-19, other diseases. The app warns about inputs that do "
        "not look like chest X-rays and about lateral views, but cannot catch every one; the lateral-view rule "
        "could not be measured on lateral films (none are in the shared data).",
        "Outside their training sources the models do far worse than on the internal test (see *Leave one source "
        "out* and the external rows above). Retraining experiments against source shortcuts, with what each "
        "measure did on sources left out of training, are in `docs/experiments/README.md`.",
    ]
    return f"""# CovidNet model card

*Generated by `covidnet model-card` from `weights/reports/*.json`, the checkpoints' metadata and the
data's metadata. Do not edit by hand.*

## Intended use
Research and teaching: showing how CNNs classify chest X-rays ({classes}) and where such models fail.
**Not for clinical use.** CovidNet is not a medical device; it must not be used to diagnose, treat or triage
anyone. Its inputs should be frontal (PA/AP) chest radiographs; anything else is out of scope.

## Models
{how_started(metas)}: on the training split below, with early stopping on validation macro AUC
and temperature scaling fitted on the validation split.

{model_table(metas)}

## Data
{data_summary(records, assigned)}

{provenance}

Splits: images are grouped by patient and by near-duplicate (perceptual hashes at most {NEAR_DUPLICATE_BITS} bits
apart); a group never straddles two splits. {split_rule(records, assigned)}

{split_counts}

## Results
{CONFIDENCE:.0%} bootstrap intervals in brackets ({BOOTSTRAP_ROUNDS:,} resamples). The ensemble averages the
backbones' calibrated probabilities. ECE is after temperature scaling.

{results_table(reports)}
{within_archive_note(reports)}{by_source_section(reports)}{leave_one_out_section(leave_one_out)}\
{changes_section(extra.previous, reports)}{uncertain_section(extra.uncertain)}
## Shortcut checks
Accuracy when the lungs are blacked out and when everything except the lungs is (both on the scans where the lung
segmenter found plausible lungs, next to the unmasked accuracy on the same scans), and with the top {TOP_BAND:.0%}
and the corners blacked out; a
linear probe's {PROBE_FOLDS}-fold accuracy at telling the data source from the penultimate features; and the
median Spearman rank correlation between the Grad-CAM grid (over what the model saw, before it is placed on the
film) of the trained model and of the same model with its layers from the explained one onwards re-initialised
(Adebayo et al. 2018: near 1 would mean the heatmap ignores what the model learned; a median at or above
{SALIENCY_MAX_SPEARMAN} is reported below). ResNet's and DenseNet's explained layers are whole stages; VGG's is the
ReLU after its last convolution, which has no parameters, so for VGG the re-initialisation starts at the stage that
computes it (its last two convolutions): re-initialising only the
layers after it would leave the explained activations themselves trained.

{shortcut_table(reports)}

{chr(10).join("- " + f for f in findings)}

### Heatmaps against the lungs
The share of each Grad-CAM heatmap's mass (for the predicted class) that lies inside the lungs found by the
lung segmenter (`weights/lungs.pt`), on the scans where it found plausible lungs: the median, and in brackets the
share of scans with more than {HALF:.0%} of the heatmap inside the lungs. Saliency outside the lungs is the
signature of shortcut learning (DeGrave et al. 2021). {lung_share_cuts(metas)}
The last column is the median share of the image the lungs cover: a heatmap spread evenly over
the image would score about that.

{heatmap_in_lungs_table(reports)}

## Chest X-ray gate
Inputs that do not look like frontal chest X-rays are flagged instead of being given a meaningful-looking
probability: a colour check, a blank-image check, a lung check (the lung segmenter finds no plausible pair of
lungs: "no lung fields found", or a single lung field where a frontal view shows two: a lateral view), and, for
each of the backbone's early and middle stages, the Mahalanobis distance of the per-channel mean and standard
deviation of its activations from those of the
training images (Lee et al. 2018), each scaled by its {quantile:.0%} quantile on the validation split, the largest
of them thresholded at its own {quantile:.0%} quantile on the validation split. Measured on the internal test split
and on {gate_corpus(gate_report)}. In fairness: the multi-stage design was chosen after
the penultimate features alone missed too much of this corpus, so the corpus figures describe a design made with
the corpus in view; the chest X-ray figures come from the untouched internal test split. Whether an image is a
chest X-ray does not depend on the classifier, so a backbone may use another's gate
(`covidnet fit-gate --shared-from NAME`); the table says whose gate each backbone uses.

{gate_table(reports, gate_report)}

{lung_check_sentence(gate_report)}

Real chest X-rays flagged, by data source and by true class (a group flagged more often looks less like the
training images to the backbone's early stages; the external source was never trained on).{most_flagged(reports)}

{gate_breakdown_table(reports)}
{familiarity_section(extra.familiarity)}
## Known failure modes and confounds
{chr(10).join("- " + f for f in failure_modes if f)}
"""
