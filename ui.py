"""Streamlit helpers shared by the app's pages (the covidnet package itself never imports streamlit).

Models are cached once per process (``st.cache_resource``) and shared by every browser session;
analyses are cached per (file hash, backbone, CAM method, target) with a bound, and a session keeps its last
Batch rows, so that a rerun does not analyse the same files again.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import streamlit as st

import covidnet
from covidnet.assessment.thresholds import bound_in_words
from covidnet.assessment.unseen_facts import answer_limits, unseen_agreement
from covidnet.inference.drawing import colour_scale
from covidnet.inference.results import Analysis
from covidnet.io.samples import Sample, samples
from covidnet.models import metadata, pretrained
from covidnet.models.checkpoints import verify_checkpoint
from covidnet.models.metadata import FamiliarityRecord, Thresholds
from covidnet.notices import GATE_CODES, ScanWarning, WarningCode
from covidnet.scoring.pipeline import score_blocks
from covidnet.scoring.rows import COLUMNS, flat

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

DISCLAIMER = (
    "**Research and teaching demo — not a medical device.** CovidNet must not be used to diagnose, treat or "
    "triage anyone. Its numbers come from models trained on public data sets with known biases."
)
UPLOAD_HELP = "PNG, JPEG, BMP, TIFF, GIF, WebP or DICOM. Files stay in memory and are never stored."
ANALYSIS_CACHE_ENTRIES = 64
BATCH_SIZE = 16  # scans per forward pass on the Batch page (the progress bar moves once per batch)


@st.cache_resource(show_spinner="Loading model…")
def shared_model(name: str) -> covidnet.Predictor:
    """One model per backbone for the whole process, loaded on first use."""
    return covidnet.load(name)


@st.cache_resource
def trained() -> list[str]:
    """The backbones with verified weights."""
    return covidnet.trained_backbones()


@st.cache_resource
def trained_metadata() -> list[covidnet.CheckpointMetadata]:
    """The verified metadata of the backbones with trained weights."""
    return [verify_checkpoint(name) for name in trained()]


def how_started() -> str:
    """How the installed backbones' training started, from their verified metadata (e.g. "… trained from scratch")."""
    return pretrained.how_started(trained_metadata())


def training_images() -> str:
    """How many images the installed backbones learned from, from their verified metadata (never typed)."""
    return metadata.training_images(trained_metadata())


@st.cache_data(max_entries=ANALYSIS_CACHE_ENTRIES, show_spinner=False)
def analysis(file_hash: str, backbone: str, cam: str, target: str | None, _scan: covidnet.Scan) -> Analysis:
    """The analysis of one already-read scan by one backbone (cached by the file's hash, not its contents)."""
    return shared_model(backbone).analyze(_scan, cam=cam, target=target)


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def app_navigation() -> None:
    """Make sure this page runs inside app.py's navigation. Streamlit runs a page opened by its URL, before any
    visitor of this server entered at "/", with its older folder-based navigation: pages listed by file name and
    app.py's frame skipped. Switch the server to app.py's navigation (Streamlit's own switch, which ``st.navigation``
    also flips) and run again; the page stays the one asked for, because both navigations name it by its URL."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def disclaimer() -> None:
    """The disclaimer, under the page's title: every page shows it exactly once."""
    st.caption(DISCLAIMER)


def require_trained() -> list[str]:
    """The trained backbones, or a plain message and a stop when there are none."""
    names = trained()
    if not names:
        st.info(
            "No trained weights are installed, so CovidNet has nothing meaningful to show. "
            "Train a model with `covidnet train --backbone resnet18`."
        )
        st.stop()
    return names


def scan_input(key: str) -> tuple[bytes, str] | None:
    """An uploaded file or a chosen sample, as (bytes, name)."""
    upload = st.file_uploader("Drop a chest X-ray here", help=UPLOAD_HELP, key=f"{key}-upload")
    if upload is not None:
        return upload.getvalue(), upload.name
    choices = {f"{covidnet.display_name(s.label)} — {s.dataset} ({s.file})": s for s in samples()}
    picked = st.selectbox("…or try a sample scan", ["—", *choices], key=f"{key}-sample")
    if picked == "—":
        return None
    sample: Sample = choices[picked]
    st.caption(
        f"Sample from the {sample.split} split, labelled {covidnet.display_name(sample.label)}. {sample.attribution}."
    )
    return sample.path.read_bytes(), sample.file


def gate_passed(warnings: list[ScanWarning], key: str) -> bool:
    """False when the gate flagged the scan and the user has not asked to see the probabilities anyway."""
    flagged = [w.message for w in warnings if w.code in GATE_CODES]
    if not flagged:
        return True
    st.error(flagged[0])
    return st.checkbox("Show the probabilities anyway (they are not meaningful for this image)", key=key)


def report_json(name: str, result: Analysis, meta: covidnet.CheckpointMetadata) -> str:
    """The downloadable JSON report of one analysis."""
    return json.dumps(
        {
            "file": name,
            **result.to_dict(),
            "weights_sha256": meta.sha256,
            "cam": result.cam,
            "heatmap_target": result.target,
            "app_version": covidnet.__version__,
            "disclaimer": DISCLAIMER.replace("**", ""),
        },
        indent=2,
    )


MODEL_NOTES = frozenset({WarningCode.HEATMAP_OUTSIDE_LUNGS, WarningCode.UNFAMILIAR_FILM})  # one model's answer


def other_warnings(warnings: list[ScanWarning]) -> None:
    """Show every warning about the scan: not the gate's (``gate_passed``), nor the notes on one model's answer
    (``lung_share``, ``unfamiliar``)."""
    for warning in warnings:
        if warning.code not in GATE_CODES | MODEL_NOTES:
            st.warning(warning.message)


def unfamiliar(result: Analysis) -> None:
    """Under one model's answer: its unfamiliar-film note, where it has one."""
    for warning in result.warnings:
        if warning.code == WarningCode.UNFAMILIAR_FILM:
            st.warning(warning.message)


def lung_share(result: Analysis) -> None:
    """Under a heatmap: how much of it lies inside the lungs, and the alarm when most of it lies outside."""
    if result.lungs is None:
        st.caption("No lung segmenter is installed, so the heatmap is not measured against the lungs.")
    elif result.heatmap_in_lungs is None:  # the gate's banner says what was found instead
        st.caption("No frontal pair of lungs was found, so the heatmap is not measured against the lungs.")
    else:
        st.caption(f"{result.heatmap_in_lungs:.0%} of the heatmap is inside the lungs.")
    for warning in result.warnings:
        if warning.code == WarningCode.HEATMAP_OUTSIDE_LUNGS:
            st.warning(warning.message)


def signs_explained(result: Analysis, meta: covidnet.CheckpointMetadata) -> None:
    """An expander that says in plain words what the heatmap, its colours, the lung share, "uncertain" and the
    unfamiliar-film note mean, with the figures that ``covidnet fit-familiarity``, ``covidnet familiarity-report``
    and ``covidnet evaluate`` measured behind each (recorded in the checkpoint's metadata)."""
    name, target, t = result.backbone, covidnet.display_name(result.target), meta.thresholds
    with st.expander("What these signs mean"):
        st.markdown(
            f"**The heatmap** ({result.cam}) shows where on the film the evidence for **{target}** lay, as this "
            f"model ({name}) weighed it: the regions that raised its {target} score most. It shows what the model "
            "looked at, not where a disease is."
        )
        st.image(colour_scale(320, 14), caption="Colour scale: blue = little evidence, red = the most", width=320)
        cut = (
            f"On validation films its median was {t.heatmap_in_lungs_median:.0%}; the warning appears below "
            f"{t.heatmap_in_lungs_below:.0%}, the worst {t.heatmap_in_lungs_quantile:.0%} of validation films "
            f"({t.heatmap_in_lungs_chosen_on})."
            if t.heatmap_in_lungs_below is not None and t.heatmap_in_lungs_median is not None
            else "No cut has been set for these weights, so no lung-share warning is given."
        )
        st.markdown(
            "**The lung share** is the part of the heatmap that lies inside the lungs the lung segmenter found (the "
            f"green outline). Evidence outside the lungs (markers, text, the body's outline) is a sign of a shortcut. "
            f"{cut}"
        )
        st.markdown(f"**Uncertain** means {_uncertain_basis(result, t)}.")
        st.markdown(f"**The unfamiliar-film note**: {_familiarity_basis(meta)}")


def share_below(value: float, threshold: float) -> str:
    """``value`` as a percentage with just enough decimals to read as less than ``threshold`` (97.7%, not 98%)."""
    digits = next((d for d in range(3) if round(value * 100, d) < round(threshold * 100, d)), 3)
    return f"{value:.{digits}%}"


NO_THRESHOLD = "no class has a majority (no threshold is recorded for these weights)"


def threshold_basis(t: Thresholds) -> str:
    """Where a model's "uncertain" threshold was chosen and, where recorded, the bound it keeps there."""
    basis = f"the threshold was chosen on {t.uncertain_chosen_on}"
    if t.uncertain_max_wrong is not None:
        basis += f": the answers at or above it were {bound_in_words(t.uncertain_max_wrong, t.uncertain_confidence)}"
    return basis


def _uncertain_basis(result: Analysis, t: Thresholds) -> str:
    if result.uncertain_below is None:
        return f"that {NO_THRESHOLD}"
    basis = (
        f"that the most likely class has less than {result.uncertainty_threshold:.0%}, so this model does not answer; "
        f"{threshold_basis(t)}"
    )
    if t.answered_share is not None and t.answered_accuracy is not None:
        basis += (
            f"; on the held-back half of those films it answered {t.answered_share:.0%} of them, "
            f"{t.answered_accuracy:.0%} of those answers right"
        )
    return basis


def _familiarity_basis(meta: covidnet.CheckpointMetadata) -> str:
    record = meta.familiarity
    if record is None or record.wrong_auroc is None:
        return "it has not been fitted and measured for these weights, so it is never shown."
    figures = (
        f"On {record.measured_on}, the distance ranked a wrong answer above a right one {record.wrong_auroc:.0%} of "
        f"the time (50% = chance); answers on the {record.n_above} films above the threshold were wrong "
        f"{_share(record.error_above)} of the time, the others {_share(record.error_below)}."
    ) + _rounds_figures(record)
    if not record.shown:
        return f"this model's unfamiliarity measure carries too little information, so the note is not shown. {figures}"
    return (
        "it appears when a film's features lie further from those of the films CovidNet learned from than on "
        f"{record.quantile:.0%} of validation films. {figures}"
    )


def _rounds_figures(record: FamiliarityRecord) -> str:
    """What the signal did on adult hospitals the model's recipe never trained on, where that was measured."""
    if not record.rounds_wrong_auroc or record.rounds_answered_wrong is None:
        return ""
    ranked = ", ".join(f"{auroc:.0%} ({source})" for source, auroc in record.rounds_wrong_auroc.items())
    return (
        f" On {record.rounds_measured_on}, the distance ranked a wrong answer above a right one {ranked} of the time, "
        f"and the note would have flagged {record.rounds_answered_wrong_flagged} of the {record.rounds_answered_wrong} "
        'wrong answers given at this model\'s "uncertain" threshold: a film from a hospital CovidNet never learned '
        "from can look familiar and still be answered wrongly."
    )


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def batch_rows(files: list[tuple[str, bytes]], backbones: list[str], *, heatmaps: bool) -> list[dict]:
    """The CLI's rows for the files (one per file and backbone, their ensemble's with several backbones, one error
    row per unreadable file), scored in batches by the CLI's pipeline with a progress bar; ``heatmaps`` makes each
    backbone's heatmap to measure it against the lungs. The session keeps the last rows, so a rerun with the same
    files and choices shows them again instead of analysing the files again."""
    key = (tuple((name, file_hash(data)) for name, data in files), tuple(backbones), heatmaps)
    kept = st.session_state.get("batch-rows")
    if kept is not None and kept[0] == key:
        return kept[1]
    rows, done = [], 0
    progress = st.progress(0.0, text="Analysing…")
    models = [shared_model(b) for b in backbones]
    for block in score_blocks(files, models, batch_size=BATCH_SIZE, measure=heatmaps):
        rows += [result.row() for result in block.results]
        done += block.scans
        progress.progress(done / len(files), text=f"{done} of {len(files)} scans")
    st.session_state["batch-rows"] = (key, rows)
    return rows


def batch_table(rows: list[dict], *, show_refused: bool) -> pd.DataFrame:
    """The rows as the CSV's columns, for reading: the classes by their display names, the warnings as their
    messages, and the probabilities of the scans the chest X-ray gate refused left empty unless ``show_refused``."""
    import pandas as pd  # only the Batch page needs it (the app's other pages stay lighter)

    cells = []
    for row in rows:
        shown = flat(row)
        if row.get("flagged") and not show_refused:
            shown.update({f"p_{c}": None for c in row["probabilities"]})
        if row.get("prediction"):
            shown["prediction"] = covidnet.display_name(row["prediction"])
        if "warnings" in row:
            shown["warnings"] = "; ".join(w["message"] for w in row["warnings"])
        cells.append(shown)
    return pd.DataFrame(cells, columns=list(COLUMNS))


def answer(result: Analysis) -> str:
    """A backbone's answer in words: its class and probability, or "uncertain" below its threshold."""
    top = result.probabilities[result.prediction]
    name = covidnet.display_name(result.prediction)
    return f"uncertain ({name} {top:.0%})" if result.uncertain else f"{name} — {top:.0%}"


def agreement_caveat(agree: bool) -> None:
    """What agreement is worth, measured on films from sources no backbone trained on (never reassurance)."""
    measured = unseen_agreement()
    if measured is None or measured.right_when_all_agree is None:
        st.caption("Agreement between backbones is not evidence that the answer is right.")
        return
    st.caption(
        f"Agreement is not evidence that the answer is right: on {measured.n} films from a source none of them "
        f"trained on ({measured.films}), all backbones gave the same class on {measured.all_agree:.0%} of films "
        f"and that class was wrong on {1 - measured.right_when_all_agree:.0%} of those."
        + ("" if agree else " When they disagree, treat every answer as uncertain.")
    )


def probability_bars(results: dict[str, Analysis], combined: covidnet.Ensemble) -> go.Figure:
    """One chart: each backbone's and the ensemble's probability of every class, side by side on one scale."""
    import plotly.graph_objects as go

    labels = [covidnet.display_name(c) for c in covidnet.CLASSES]
    bars = [(b, r.probabilities) for b, r in results.items()] + [("ensemble", combined.probabilities)]
    figure = go.Figure(
        [go.Bar(name=b, x=labels, y=[p[c] for c in covidnet.CLASSES], texttemplate="%{y:.0%}") for b, p in bars]
    )
    figure.update_layout(
        barmode="group", yaxis={"range": [0, 1], "tickformat": ".0%"}, height=320,
        margin={"l": 10, "r": 10, "t": 10, "b": 10}, legend={"orientation": "h"},
    )  # fmt: skip
    return figure


def measured_limit(backbone: str, said: str) -> None:
    """Beside an answer: how often that answer was right on films from sources the model never trained on."""
    limit = answer_limits(backbone, said)
    if limit is not None:
        st.caption(limit)


def sample_disagreement(name: str, result: Analysis) -> None:
    """For a bundled sample, say so when the model's answer is not the sample's label."""
    sample = next((s for s in samples() if s.file == name), None)
    if sample is not None and not result.uncertain and result.prediction != sample.label:
        st.info(
            f"The model disagrees with this sample's label: it is labelled {covidnet.display_name(sample.label)}, "
            f"and {result.backbone} answers {covidnet.display_name(result.prediction)}."
        )
