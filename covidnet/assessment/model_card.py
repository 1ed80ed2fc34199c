"""The model card document: ``docs/model_card.md`` and the README's results table, generated from the
evaluation reports, the checkpoints' metadata and the data's metadata. Never written by hand.

Every figure in the card comes from those (the tables from ``covidnet.assessment.tables``, the figures in the
prose from the helpers below); the generator writes nothing but the document and the README block
(``covidnet evaluate`` records metrics and thresholds in the checkpoints' metadata).

Longer than our usual ~250 lines because most of it is the document's prose template, kept whole so that
it reads like the card it produces.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

from PIL import Image

from covidnet.assessment.metrics import BOOTSTRAP_ROUNDS, CONFIDENCE
from covidnet.assessment.reports import (
    EvaluationReport,
    GateReport,
    LeaveOneOutReport,
    find_gate_report,
    find_leave_one_out_report,
    read_reports,
)
from covidnet.assessment.shortcuts import PROBE_FOLDS, SALIENCY_MAX_SPEARMAN, TOP_BAND
from covidnet.assessment.tables import (
    data_tables,
    gate_breakdown_table,
    gate_table,
    heatmap_in_lungs_table,
    leave_one_out_table,
    model_table,
    results_table,
    shortcut_findings,
    shortcut_table,
    shown,
    source_table,
    within_archive_counts,
)
from covidnet.classes import CLASSES, display_name
from covidnet.inference.gate import GATE_QUANTILE
from covidnet.inference.predictor import IN_LUNGS_ALARM
from covidnet.models.checkpoints import checkpoint_paths
from covidnet.models.metadata import CheckpointMetadata, read_checkpoint_metadata
from covidnet.models.pretrained import how_started
from covidnet.models.registry import backbones
from covidnet.training.data import Record, read_metadata
from covidnet.training.splits import NEAR_DUPLICATE_BITS, SplitEntry, read_split_file

RESULTS_START, RESULTS_END = "<!-- results:start -->", "<!-- results:end -->"
PAEDIATRIC_DATASETS = ("kermany",)  # Kermany et al.: children aged one to five, one hospital in Guangzhou
TEXT_MINED_DATASET = "nih-chestxray8"  # NIH ChestX-ray8: labels text-mined from the radiology reports
FEW_IMAGES = 30  # a class with fewer images than this in a data set has very uncertain metrics there


def write_model_card(
    reports_dir: Path, weights_dir: Path, metadata_csv: Path, split_file: Path, out: Path, readme: Path | None
) -> str:
    """Generate ``out`` (and the README's results table) from the reports; return the Markdown."""
    reports = shown(read_reports(reports_dir))
    gate_report = find_gate_report(reports_dir)
    paths = sorted(checkpoint_paths(name, weights_dir)[1] for name in backbones())  # not other models' metadata
    metas = [read_checkpoint_metadata(p) for p in paths if p.exists()]
    leave_one_out = find_leave_one_out_report(reports_dir)
    markdown = render(reports, metas, metadata_csv, split_file, gate_report, leave_one_out)
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
) -> str:
    """The whole model card in Markdown."""
    records = read_metadata(metadata_csv)
    assigned = read_split_file(split_file)
    provenance, split_counts = data_tables(metadata_csv, split_file)
    findings = shortcut_findings(reports) or ["No backbone kept its accuracy with the lungs hidden."]
    classes = ", ".join(display_name(c) for c in CLASSES)
    quantile = next((m.gate["quantile"] for m in metas if m.gate.get("quantile")), GATE_QUANTILE)
    failure_modes = [
        _paediatric_confound(records, assigned),
        _covid_pneumonia_confound(records, assigned, reports),
        _upscaled_sources(metadata_csv),
        _few_external_images(reports),
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
apart); a group never straddles two splits. {_split_rule(records, assigned)}

{split_counts}

## Results
{CONFIDENCE:.0%} bootstrap intervals in brackets ({BOOTSTRAP_ROUNDS:,} resamples). The ensemble averages the
backbones' calibrated probabilities. ECE is after temperature scaling.

{results_table(reports)}
{_within_archive(reports)}{_by_source(reports)}{_leave_one_out(leave_one_out)}
## Shortcut checks
Accuracy when the lungs are blacked out and when everything except the lungs is (both on the scans where the lung
segmenter found plausible lungs, next to the unmasked accuracy on the same scans), and with the top {TOP_BAND:.0%}
and the corners blacked out; a
linear probe's {PROBE_FOLDS}-fold accuracy at telling the data source from the penultimate features; and the
median Spearman rank correlation between Grad-CAM of the trained model and of the same model with its layers from
the explained one onwards re-initialised (Adebayo et al. 2018: near 1 would mean the heatmap ignores what the
model learned; a median at or above {SALIENCY_MAX_SPEARMAN} is reported below). ResNet's and DenseNet's explained
layers are whole stages; VGG's is the ReLU after its last convolution, which has no parameters, so for VGG the
re-initialisation starts at the stage that computes it (its last two convolutions): re-initialising only the
layers after it would leave the explained activations themselves trained.

{shortcut_table(reports)}

{chr(10).join("- " + f for f in findings)}

### Heatmaps against the lungs
The share of each Grad-CAM heatmap's mass (for the predicted class) that lies inside the lungs found by the
lung segmenter (`weights/lungs.pt`), on the scans where it found plausible lungs: the median, and in brackets the
share of scans with more than {IN_LUNGS_ALARM:.0%} of the heatmap inside the lungs. Saliency outside the lungs is the
signature of shortcut learning (DeGrave et al. 2021); the app warns when less than {IN_LUNGS_ALARM:.0%} of a heatmap
lies inside the lungs. The last column is the median share of the image the lungs cover: a heatmap spread evenly over
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
and on {_gate_corpus(gate_report)}. In fairness: the multi-stage design was chosen after
the penultimate features alone missed too much of this corpus, so the corpus figures describe a design made with
the corpus in view; the chest X-ray figures come from the untouched internal test split. Whether an image is a
chest X-ray does not depend on the classifier, so a backbone may use another's gate
(`covidnet fit-gate --shared-from NAME`); the table says whose gate each backbone uses.

{gate_table(reports, gate_report)}

{_lung_check(gate_report)}

Real chest X-rays flagged, by data source and by true class (a group flagged more often looks less like the
training images to the backbone's early stages; the external source was never trained on).{_most_flagged(reports)}

{gate_breakdown_table(reports)}

## Known failure modes and confounds
{chr(10).join("- " + f for f in failure_modes if f)}
"""


def data_summary(records: list[Record], assigned: dict[str, SplitEntry]) -> str:
    """One sentence on the data: how many images, from how many repositories, and how the split grew."""
    added = Counter(entry.split for entry in assigned.values() if entry.round > 1)
    grown = (
        f" The split grew with the data: {sum(added.values()):,} images added later were placed without moving "
        "any earlier one, so the shipped models' training images are unchanged; the test split now also holds "
        f"{added['test']:,} of the added images, from sources the shipped models may never have trained on."
        if added
        else ""
    )
    repositories = len({r.source for r in records})
    return (
        f"{len(records):,} de-duplicated public chest X-rays from {repositories} GitHub repositories "
        f"(`../shared/data/cxr`, see its README).{grown}"
    )


def _split_rule(records: list[Record], assigned: dict[str, SplitEntry]) -> str:
    """What is held out as the external test set, and the shares of the train/val/test split."""
    split_of = {r.sha256: assigned[r.sha256].split for r in records if r.sha256 in assigned}
    external = sorted({(r.source, r.dataset) for r in records if split_of.get(r.sha256) == "external"})
    held_out = (
        "Held out whole as the external test set: "
        + ", ".join(f"{source} ({dataset})" for source, dataset in external)
        + "; images from other sources that duplicate or share a patient with it are excluded from training. "
        if external
        else ""
    )
    counts = Counter(split_of.values())
    inside = [counts[name] for name in ("train", "val", "test")]
    shares = "/".join(f"{n / sum(inside):.0%}" for n in inside) if sum(inside) else "n/a"
    return (
        f"{held_out}The rest is split into train/val/test ({shares} of its images), stratified by class and "
        "source, with a fixed seed (`weights/split.csv`)."
    )


def _paediatric_confound(records: list[Record], assigned: dict[str, SplitEntry]) -> str:
    """The share of paediatric pneumonia images (and, once the split has grown, among the training images of its
    first round, which the shipped models trained on), and where the adult ones come from."""
    pneumonia = [r for r in records if r.label == "pneumonia"]
    children = sum(r.dataset in PAEDIATRIC_DATASETS for r in pneumonia)
    if not children:
        return ""
    entries = [assigned.get(r.sha256) for r in pneumonia]
    first = [r for r, e in zip(pneumonia, entries, strict=True) if e and e.split == "train" and e.round == 1]
    grown = any(entry.round > 1 for entry in assigned.values()) and first
    trained = (
        f"; {sum(r.dataset in PAEDIATRIC_DATASETS for r in first) / len(first):.0%} of the first split round's "
        "training images, which the shipped models trained on"
        if grown
        else ""
    )
    adults = Counter(r.dataset for r in pneumonia if r.dataset not in PAEDIATRIC_DATASETS)
    origin = _counts(adults)
    noisy = f"; {TEXT_MINED_DATASET}'s labels are text-mined (noisy)" if TEXT_MINED_DATASET in adults else ""
    return (
        f"**Pneumonia is {children / len(pneumonia):.0%} paediatric** (Kermany, one hospital in Guangzhou: "
        f"{children:,} of {len(pneumonia):,} images{trained}) while COVID-19 is adult: a model can learn "
        f'"child → pneumonia or normal, adult with opacities → COVID-19". The adult pneumonia images: '
        f"{origin}{noisy}."
    )


def _covid_pneumonia_confound(
    records: list[Record], assigned: dict[str, SplitEntry], reports: dict[str, EvaluationReport]
) -> str:
    """A warning when no training source holds both COVID-19 and pneumonia images (then the source and the
    COVID-19-against-pneumonia label are one variable in training), with what the external test measured."""
    training = [r for r in records if (entry := assigned.get(r.sha256)) and entry.split == "train"]
    covid = Counter(r.dataset for r in training if r.label == "covid")
    pneumonia = Counter(r.dataset for r in training if r.label == "pneumonia")
    if not covid or not pneumonia or covid.keys() & pneumonia.keys():
        return ""
    external = reports["external"].ensemble.metrics.covid_vs_pneumonia_auc if "external" in reports else None
    measured = (
        f" The external source holds both; on it the ensemble's COVID-19 vs pneumonia AUC is {external.value:.3f}."
        if external and external.value is not None
        else ""
    )
    return (
        f"**No training source holds both COVID-19 and pneumonia images** (training images, COVID-19: "
        f"{_counts(covid)}; pneumonia: {_counts(pneumonia)}): in training, the archive a film comes from and "
        "whether it shows COVID-19 or another pneumonia are one variable, which no sampling, augmentation or source "
        "penalty can separate, so on an unseen source a model tells the two apart only as far as it learned the "
        f"disease.{measured}"
    )


def _counts(counter: Counter) -> str:
    """``name n, name n, …``, most common first."""
    return ", ".join(f"{name} {n:,}" for name, n in counter.most_common())


def _upscaled_sources(metadata_csv: Path) -> str:
    """The sources whose images were stored as small squares and upscaled (from the metadata's original sizes)."""
    with metadata_csv.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("orig_width") and r.get("orig_height")]
    by_source: dict[str, list[dict]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    upscaled = []
    for source, source_rows in sorted(by_source.items()):
        (size, n), *_ = Counter((int(r["orig_width"]), int(r["orig_height"])) for r in source_rows).most_common(1)
        with Image.open(metadata_csv.parent / source_rows[0]["path"]) as stored:
            long_side = max(stored.size)
        if size[0] == size[1] and size[0] < long_side and 2 * n >= len(source_rows):
            upscaled.append(f"{source} at {size[0]}×{size[1]}")
    if not upscaled:
        return ""
    return (
        f"Some sources were stored as small squares and upscaled ({'; '.join(upscaled)}), so sharpness and aspect "
        "ratio differ by source; the source probe above measures how much of this the features carry."
    )


def _by_source(reports: dict[str, EvaluationReport]) -> str:
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


def _leave_one_out(report: LeaveOneOutReport | None) -> str:
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


def _within_archive(reports: dict[str, EvaluationReport]) -> str:
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


def _few_external_images(reports: dict[str, EvaluationReport]) -> str:
    """A warning when a class has few images in the external test set."""
    if "external" not in reports:
        return ""
    label, n = min(reports["external"].ensemble.metrics.class_counts.items(), key=lambda kv: kv[1])
    if n >= FEW_IMAGES:
        return ""
    return f"The external source has only {n} {label} images: its {label}-class metrics are very uncertain."


def _gate_corpus(gate_report: GateReport | None) -> str:
    """What the gate report measured the gate on."""
    if gate_report is None:
        return "a corpus of images that are not chest X-rays, once `covidnet gate-report` has run"
    kinds = ", ".join(f"{kind} {n}" for kind, n in gate_report.kinds.items())
    return (
        f"{gate_report.n} images that are not chest X-rays, built offline by `tests/gate_corpus.py` from "
        f"scikit-image and scikit-learn photos and synthetic images ({kinds}), by `covidnet gate-report`"
    )


def _lung_check(gate_report: GateReport | None) -> str:
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


def _most_flagged(reports: dict[str, EvaluationReport]) -> str:
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
