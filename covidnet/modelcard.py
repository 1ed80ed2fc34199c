"""The model card: ``docs/model_card.md`` and the README's results table, generated from the
evaluation reports, the checkpoints' cards and the data's metadata. Never written by hand.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from covidnet.cards import ModelCard, read_card, write_card
from covidnet.checkpoints import checkpoint_paths
from covidnet.classes import CLASSES, display_name
from covidnet.data import read_metadata
from covidnet.metrics import uncertainty_threshold
from covidnet.splits import SPLITS, read_split_file

REPORTS = {"internal_test": "Internal test (patient-level split)", "external": "External source (never trained on)"}
VALIDATION_REPORT = "validation"  # used for the app's "uncertain" threshold only
RESULTS_START, RESULTS_END = "<!-- results:start -->", "<!-- results:end -->"
# Accuracy this close to chance with the lungs hidden means the model needs the lungs.
SHORTCUT_MARGIN = 0.15
# A heatmap that still ranks pixels like the trained model's after the explained layers are re-initialised
# ignores what the model learned. Unrelated maps give a rank correlation near 0, the same map 1; below 0.5,
# less than a quarter of the rank variance is shared (rho² < 0.25).
SALIENCY_MAX_SPEARMAN = 0.5


def load_reports(folder: Path) -> dict[str, dict]:
    """The evaluation reports in ``folder`` that exist, by name (``REPORTS`` and the validation report)."""
    names = [*REPORTS, VALIDATION_REPORT]
    return {n: json.loads((folder / f"{n}.json").read_text()) for n in names if (folder / f"{n}.json").exists()}


def load_gate_report(folder: Path) -> dict | None:
    """The `covidnet gate-report` file in ``folder``, if it exists."""
    path = folder / "gate.json"
    return json.loads(path.read_text()) if path.exists() else None


def results_table(reports: dict[str, dict]) -> str:
    """A Markdown table: one row per model and data set, with 95% intervals."""
    lines = [
        "| data | model | n | macro AUC | accuracy | COVID-19 sensitivity | COVID-19 specificity "
        "| COVID-19 sens. at 95% spec. | ECE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, report in reports.items():
        models = {**report["backbones"], "ensemble": report["ensemble"]}
        for model, m in models.items():
            covid = m["per_class"]["covid"]
            ece = m["ece"]["after_temperature"] if isinstance(m["ece"], dict) else m["ece"]
            lines.append(
                f"| {REPORTS[name]} | {model} | {m['n']} | {_ci(m['macro_auc'])} | {_ci(m['accuracy'])} | "
                f"{_ci(covid['sensitivity'])} | {_ci(covid['specificity'])} | "
                f"{_ci(m['covid_sensitivity_at_95_specificity'])} | {ece:.3f} |"
            )
    return "\n".join(lines)


def shortcut_table(reports: dict[str, dict]) -> str:
    lines = [
        "| data | model | accuracy | lungs masked | top & corners masked | majority class | source probe (majority) "
        "| Grad-CAM vs randomised (median Spearman) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, report in reports.items():
        for model, m in report["backbones"].items():
            s = m.get("shortcuts")
            if not s:
                continue
            probe = s["source_probe"]
            probe_text = (
                "n/a (one source)"
                if probe["accuracy"] is None
                else f"{probe['accuracy']:.3f} ({probe['majority_baseline']:.3f})"
            )
            lines.append(
                f"| {REPORTS[name]} | {model} | {s['accuracy']:.3f} | {s['accuracy_lungs_masked']:.3f} | "
                f"{s['accuracy_top_and_corners_masked']:.3f} | {s['majority_class_accuracy']:.3f} | {probe_text} | "
                f"{s['saliency_sanity']['median_spearman']:.2f} |"
            )
    return "\n".join(lines)


def shortcut_findings(reports: dict[str, dict]) -> list[str]:
    """Plain sentences on what the shortcut checks found."""
    findings = []
    for name, report in reports.items():
        for model, m in report["backbones"].items():
            s = m.get("shortcuts")
            if not s:
                continue
            if s["accuracy_lungs_masked"] > s["majority_class_accuracy"] + SHORTCUT_MARGIN:
                findings.append(
                    f"**{model}, {REPORTS[name].lower()}: it still reaches {s['accuracy_lungs_masked']:.0%} accuracy "
                    f"with the lungs blacked out** (majority class: {s['majority_class_accuracy']:.0%}). "
                    "It has learned cues outside the lungs (patient age and body size, positioning, "
                    "source-specific image traits): part of its accuracy is a shortcut, not lung disease."
                )
            sanity = s["saliency_sanity"]["median_spearman"]
            if sanity >= SALIENCY_MAX_SPEARMAN:
                findings.append(
                    f"**{model}, {REPORTS[name].lower()}: its Grad-CAM barely changes when the explained layers are "
                    f"re-initialised** (median rank correlation {sanity:.2f}, at or above {SALIENCY_MAX_SPEARMAN}): "
                    "its heatmaps there follow the image's structure more than what the model learned; read them "
                    "with caution."
                )
            probe = s["source_probe"]
            if probe["accuracy"] is not None and probe["accuracy"] > probe["majority_baseline"] + SHORTCUT_MARGIN:
                findings.append(
                    f"{model}, {REPORTS[name].lower()}: a linear probe on its features tells the data source apart "
                    f"with {probe['accuracy']:.0%} accuracy (majority {probe['majority_baseline']:.0%}): the features "
                    "encode where an image came from."
                )
    return findings


def gate_table(reports: dict[str, dict], gate_report: dict | None) -> str:
    """Share of real chest X-rays (internal test) and of non-X-ray images flagged by each backbone's gate."""
    if not gate_report:
        return "The chest X-ray gate has not been measured yet (`covidnet gate-report`)."
    test = reports.get("internal_test", {"backbones": {}})["backbones"]
    lines = [
        "| backbone | gate of | chest X-rays flagged (internal test) "
        f"| non-X-ray images flagged (n = {gate_report['n']}) | lowest share flagged, by kind |",
        "|---|---|---|---|---|",
    ]
    for name, row in gate_report["backbones"].items():
        real = test.get(name, {}).get("gate", {}).get("flagged_share")
        worst = min(row["flagged_share_by_kind"].items(), key=lambda kv: kv[1])
        lines.append(
            f"| {name} | {row.get('gate_of', name)} | {'n/a' if real is None else f'{real:.1%}'} | "
            f"{row['flagged_share']:.1%} | "
            f"{worst[0]}: {worst[1]:.0%} |"
        )
    return "\n".join(lines)


def gate_breakdown_table(reports: dict[str, dict]) -> str:
    """Share of real chest X-rays flagged by the gate, per evaluation split, data source and true class."""
    names = sorted({n for r in reports.values() for n in r["backbones"]})
    lines = ["| split | group | n | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    for split in ("internal_test", "external"):
        backbones = reports.get(split, {}).get("backbones", {})
        for by, label in (("by_source", "source {}"), ("by_class", "class {}")):
            groups = {g: row["n"] for m in backbones.values() for g, row in m.get("gate", {}).get(by, {}).items()}
            for group, n in sorted(groups.items()):
                rows = [backbones.get(name, {}).get("gate", {}).get(by, {}).get(group) for name in names]
                cells = ["n/a" if row is None else f"{row['flagged_share']:.1%}" for row in rows]
                lines.append(f"| {REPORTS[split]} | {label.format(group)} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def data_tables(metadata_csv: Path, split_file: Path) -> tuple[str, str]:
    """Provenance (source, dataset, licence, counts) and split counts, in Markdown."""
    records = read_metadata(metadata_csv)
    assigned = read_split_file(split_file)
    provenance = Counter((r.source, r.dataset, r.license or "not stated", r.label) for r in records)
    rows = sorted({(s, d, lic) for s, d, lic, _ in provenance})
    source_lines = [
        "| source repository | original dataset | licence as stated | COVID-19 | Normal | Pneumonia |",
        "|---|---|---|---|---|---|",
    ]
    for s, d, lic in rows:
        counts = " | ".join(str(provenance[(s, d, lic, c)]) for c in CLASSES)
        source_lines.append(f"| {s} | {d} | {lic} | {counts} |")
    splits = Counter((assigned[r.sha256][1], r.label) for r in records)
    split_lines = ["| split | COVID-19 | Normal | Pneumonia | total |", "|---|---|---|---|---|"]
    for name in SPLITS:
        counts = [splits[(name, c)] for c in CLASSES]
        split_lines.append(f"| {name} | " + " | ".join(map(str, counts)) + f" | {sum(counts)} |")
    return "\n".join(source_lines), "\n".join(split_lines)


def data_summary(metadata_csv: Path, split_file: Path) -> str:
    """One sentence on the data: how many images, from how many repositories, and how the split grew."""
    records = read_metadata(metadata_csv)
    entries = read_split_file(split_file).values()
    added = Counter(entry.split for entry in entries if entry.round > 1)
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


def model_table(cards: list[ModelCard]) -> str:
    lines = [
        "| backbone | initialisation | input | parameters | file | epochs (best) | training time | temperature |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for card in cards:
        t = card.training
        lines.append(
            f"| {card.backbone} | {card.init} | {card.input_size}px | {card.parameters / 1e6:.1f} M | "
            f"{card.size_bytes / 2**20:.1f} MB {card.dtype} | {len(t.get('history', []))} ({t.get('best_epoch')}) | "
            f"{t.get('seconds', 0) / 60:.0f} min | {card.temperature:.2f} |"
        )
    total = sum(card.training.get("seconds", 0) for card in cards) / 60
    lines.append(f"| **all** | | | | | | **{total:.0f} min** | |")
    return "\n".join(lines)


def record_in_cards(reports: dict[str, dict], weights_dir: Path) -> None:
    """Write each backbone's headline test metrics, and the "uncertain" threshold chosen on the
    validation report, into its card (the .pt is untouched)."""
    for name, report in reports.items():
        for backbone, m in report["backbones"].items():
            _, card_path = checkpoint_paths(backbone, weights_dir)
            card = read_card(card_path)
            if card.sha256 != m["weights_sha256"]:
                continue  # the report measured other weights
            if name == VALIDATION_REPORT:
                threshold = uncertainty_threshold(m["selective"])
                _update_card_metrics(card_path, card, {"uncertain_below": threshold})
                continue
            headline = {
                "data": report["data"],
                "n": m["n"],
                "macro_auc": m["macro_auc"],
                "accuracy": m["accuracy"],
                "covid_sensitivity": m["per_class"]["covid"]["sensitivity"],
                "covid_specificity": m["per_class"]["covid"]["specificity"],
                "ece": m["ece"],
            }
            _update_card_metrics(card_path, card, {name: headline})


def _update_card_metrics(card_path: Path, card: ModelCard, metrics: dict) -> None:
    write_card(ModelCard.from_dict({**json.loads(card.to_json()), "metrics": {**card.metrics, **metrics}}), card_path)


def write_readme_results(readme: Path, table: str) -> None:
    text = readme.read_text()
    block = f"{RESULTS_START}\n{table}\n{RESULTS_END}"
    pattern = re.compile(re.escape(RESULTS_START) + ".*?" + re.escape(RESULTS_END), re.S)
    readme.write_text(pattern.sub(lambda _: block, text) if pattern.search(text) else text + "\n" + block + "\n")


def _ci(metric: dict) -> str:
    if metric["value"] is None:
        return "n/a"
    return f"{metric['value']:.3f} ({metric['low']:.3f}–{metric['high']:.3f})"


def render(
    reports: dict[str, dict], cards: list[ModelCard], metadata_csv: Path, split_file: Path, gate_report: dict | None
) -> str:
    """The whole model card in Markdown."""
    provenance, split_counts = data_tables(metadata_csv, split_file)
    findings = shortcut_findings(reports) or ["No backbone kept its accuracy with the lungs hidden."]
    classes = ", ".join(display_name(c) for c in CLASSES)
    return f"""# CovidNet model card

*Generated by `covidnet model-card` from `weights/reports/*.json`, the checkpoints' cards and the
data's metadata. Do not edit by hand.*

## Intended use
Research and teaching: showing how CNNs classify chest X-rays ({classes}) and where such models fail.
**Not for clinical use.** CovidNet is not a medical device; it must not be used to diagnose, treat or triage
anyone. Its inputs should be frontal (PA/AP) chest radiographs; anything else is out of scope.

## Models
All shipped backbones were **trained from scratch** (no ImageNet or radiology pretraining was available on
the training machine) on the training split below, with early stopping on validation macro AUC and
temperature scaling fitted on the validation split.

{model_table(cards)}

## Data
{data_summary(metadata_csv, split_file)}

{provenance}

Splits: images are grouped by patient and by near-duplicate (64-bit perceptual hash ≤ 4 bits apart); a group
never straddles two splits. One whole source (ieee8023 via GeneralBlockchain) is held out as the external
test set; images from other sources that duplicate or share a patient with it are excluded from training.
The rest is split 70/15/15, stratified by class and source, with a fixed seed (`weights/split.csv`).

{split_counts}

## Results
95% bootstrap intervals in brackets (1,000 resamples). The ensemble averages the backbones' calibrated
probabilities. ECE is after temperature scaling.

{results_table(reports)}

## Shortcut checks
Accuracy with the central lung area blacked out and with the top 15% and the corners blacked out; a linear
probe's 5-fold accuracy at telling the data source from the penultimate features; and the median Spearman rank
correlation between Grad-CAM of the trained model and of the same model with its layers from the explained one
onwards re-initialised (Adebayo et al. 2018: near 1 would mean the heatmap ignores what the model learned). ResNet's
and DenseNet's explained layers are whole stages; VGG's is the ReLU after its last convolution, so for VGG the
re-initialisation starts at the stage that computes it (its last two convolutions): re-initialising only its
classification head left its heatmap almost unchanged (median rank correlation 0.99 in the reports committed in
e8a82f0).

{shortcut_table(reports)}

{chr(10).join("- " + f for f in findings)}

## Chest X-ray gate
Inputs that do not look like frontal chest X-rays are flagged instead of being given a meaningful-looking
probability: a colour check, a blank-image check, and, for each of the backbone's early and middle stages, the
Mahalanobis distance of the per-channel mean and standard deviation of its activations from those of the
training images (Lee et al. 2018), each scaled by its 99th percentile on the validation split, the largest of
them thresholded at its own 99th percentile on the validation split. Measured on the internal test split and on
174 images built offline from scikit-image and scikit-learn photos (colour, greyscale, cropped, rotated,
inverted), a CT-like phantom, rendered documents, drawings, gradients, noise and blank images
(`covidnet gate-report`). In fairness: the multi-stage design was chosen after the penultimate features alone
flagged only 82% of this corpus for resnet18, so these corpus figures describe a design made with the corpus in
view; the chest X-ray figures come from the untouched internal test split. Whether an image is a chest X-ray
does not depend on the classifier, so a backbone may use another's gate (`covidnet fit-gate --shared-from NAME`);
the table says whose gate each backbone uses.

{gate_table(reports, gate_report)}

Real chest X-rays flagged, by data source and by true class (a group flagged more often looks less like the
training images to the backbone's early stages; the external source was never trained on). COVID-19 images are
flagged more often than the others: a flagged scan is not evidence against COVID-19, and the app offers its
probabilities behind a "show anyway" choice.

{gate_breakdown_table(reports)}

## Known failure modes and confounds
- **Pneumonia is about 86% paediatric** (Kermany, one hospital in Guangzhou) while COVID-19 is adult: a model can
  learn "child → pneumonia or normal, adult with opacities → COVID-19". Adult pneumonia is mostly NIH ChestX-ray8
  images with text-mined (noisy) labels.
- Several sources were stored at 299×299 or 224×224 and upscaled, so sharpness and aspect ratio differ by
  source; the source probe above measures how much of this the features carry.
- The external source has only 11 normal images: its normal-class metrics are very uncertain.
- Images from papers and social media (ieee8023, COVID-CXNet) may carry arrows, text and crops.
- Out of scope: lateral views, CT, paediatric COVID-19, other diseases. The app warns about inputs that do not
  look like chest X-rays, but cannot catch every one.
"""


def write_model_card(
    reports_dir: Path, weights_dir: Path, metadata_csv: Path, split_file: Path, out: Path, readme: Path | None
) -> str:
    """Generate ``out`` (and the README's results table) from the reports; return the Markdown."""
    everything = load_reports(reports_dir)
    gate_report = load_gate_report(reports_dir)
    record_in_cards(everything, weights_dir)
    reports = {name: report for name, report in everything.items() if name in REPORTS}
    cards = [read_card(p) for p in sorted(weights_dir.glob("*.json"))]
    markdown = render(reports, cards, metadata_csv, split_file, gate_report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown)
    if readme is not None:
        write_readme_results(readme, results_table(reports))
    return markdown
