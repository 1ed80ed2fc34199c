"""Model card: the measured results, rendered from the evaluation reports shipped in weights/reports."""

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

import covidnet
import ui
from covidnet.assessment.card_sections import familiarity_section
from covidnet.assessment.check_tables import (
    gate_breakdown_table,
    gate_table,
    heatmap_in_lungs,
    heatmap_in_lungs_table,
    shortcut_findings,
    shortcut_table,
)
from covidnet.assessment.metrics import CONFIDENCE
from covidnet.assessment.report_files import (
    find_familiarity_report,
    find_gate_report,
    find_uncertain_report,
    read_reports,
)
from covidnet.assessment.tables import REPORT_TITLES, results_table, shown
from covidnet.assessment.thresholds import bound_in_words
from covidnet.models.checkpoints import default_weights_dir

ui.app_navigation()

st.title("Model card")
ui.disclaimer()
reports_dir = default_weights_dir() / "reports"
reports = shown(read_reports(reports_dir))
if not ui.trained() or not reports:
    st.info("No trained and evaluated models are installed yet, so there are no measured results to show.")
    st.stop()

st.markdown(
    f"Every number here was measured by `covidnet evaluate` on the data named, with {CONFIDENCE:.0%} bootstrap "
    "intervals. "
    f"The models learned from public data with known confounds ({ui.how_started()}): read the findings below."
)
st.markdown(results_table(reports))

labels = [covidnet.display_name(c) for c in covidnet.CLASSES]
models = [*next(iter(reports.values())).models()]
model = st.selectbox("Charts for", models)
columns = st.columns(len(reports))
for column, (name, report) in zip(columns, reports.items(), strict=True):
    m = report.models()[model]
    with column:
        st.subheader(REPORT_TITLES[name])
        st.caption(f"{report.data} — n = {m.n}")
        matrix = go.Figure(
            go.Heatmap(
                z=m.confusion_matrix, x=labels, y=labels, colorscale="Blues", texttemplate="%{z}", showscale=False
            )
        )
        matrix.update_layout(
            title="Confusion matrix",
            xaxis_title="predicted",
            yaxis_title="true",
            height=320,
            yaxis={"autorange": "reversed"},
            margin={"t": 40, "b": 10},
        )
        st.plotly_chart(matrix, width="stretch", key=f"cm-{name}")
        roc = go.Figure()
        for c, label in zip(covidnet.CLASSES, labels, strict=True):
            if m.roc[c]["fpr"]:
                roc.add_scatter(x=m.roc[c]["fpr"], y=m.roc[c]["tpr"], name=label, mode="lines")
        roc.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, showlegend=False)
        roc.update_layout(
            title="ROC (one vs rest)",
            xaxis_title="1 − specificity",
            yaxis_title="sensitivity",
            height=320,
            margin={"t": 40, "b": 10},
        )
        st.plotly_chart(roc, width="stretch", key=f"roc-{name}")
        bins = [b for b in m.reliability if b["count"]]
        reliability = go.Figure()
        reliability.add_bar(
            x=[(b["low"] + b["high"]) / 2 for b in bins], y=[b["accuracy"] for b in bins], width=0.09, name="accuracy"
        )
        reliability.add_scatter(
            x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, name="perfect calibration"
        )
        reliability.update_layout(
            title="Reliability (calibrated)",
            xaxis_title="confidence",
            yaxis_title="accuracy",
            height=320,
            margin={"t": 40, "b": 10},
        )
        st.plotly_chart(reliability, width="stretch", key=f"rel-{name}")

uncertain = find_uncertain_report(reports_dir)
if uncertain is not None and model in uncertain.models:
    st.header('When a model says "uncertain"')
    calibration = uncertain.models[model]
    held_back = calibration.checked
    st.markdown(
        f'{model} answers when its top probability reaches {calibration.threshold:.0%} and says "uncertain" below '
        f"it. The threshold was chosen on films from sources it never trained on ({calibration.unseen}): the lowest "
        f"at which its answers are {bound_in_words(uncertain.max_wrong_answered, uncertain.bound_confidence)}. "
        "On the other half "
        f"of them ({held_back.n} films, other patients) it answered {held_back.answered:.0%}, and "
        f"{held_back.accuracy or 0:.0%} of those answers were right. The curves show the trade: each point is a "
        "threshold, with the share of films answered and how many of those answers were right."
    )
    curves = go.Figure()
    for title, points in (("internal test", calibration.internal_curve), ("unseen sources", calibration.unseen_curve)):
        curves.add_scatter(
            x=[p.answered for p in points], y=[p.accuracy for p in points], mode="lines+markers", name=title,
            text=[f"threshold {p.threshold:.2f}" for p in points],
        )  # fmt: skip
    chosen = next(p for p in calibration.unseen_curve if p.threshold == calibration.threshold)
    curves.add_scatter(
        x=[chosen.answered], y=[chosen.accuracy], mode="markers", marker={"size": 14, "symbol": "star"},
        name=f"its threshold ({calibration.threshold:.2f})",
    )  # fmt: skip
    curves.update_layout(
        xaxis={"title": "share of films answered", "tickformat": ".0%", "range": [0, 1]},
        yaxis={"title": "right among those answered", "tickformat": ".0%", "range": [0, 1]},
        height=380,
    )
    st.plotly_chart(curves, width="stretch", key="risk-coverage")

st.header("Shortcut checks")
st.markdown(shortcut_table(reports))
for finding in shortcut_findings(reports):
    st.markdown(f"- {finding}")

st.subheader("How much of each heatmap lies inside the lungs")
in_lungs = heatmap_in_lungs(reports)
if any(in_lungs.values()):
    st.markdown(
        "The share of each Grad-CAM heatmap's mass inside the lungs the lung segmenter found, per backbone: the "
        "median over each test set's scans with plausible lungs. The app warns on a scan whose share falls in the "
        "worst tail of validation films (the cut each model's metadata records; see the Analyse page). The "
        "dotted line is the lungs' median share of the image, what a heatmap spread evenly would score."
    )
    chart = go.Figure()
    for title, per_model in in_lungs.items():
        chart.add_bar(x=list(per_model), y=[g.median for g in per_model.values()], name=title, texttemplate="%{y:.0%}")
    areas = [g.lung_area_median for per_model in in_lungs.values() for g in per_model.values() if g.lung_area_median]
    if areas:
        chart.add_hline(y=float(sorted(areas)[len(areas) // 2]), line_dash="dot", line_color="grey")
    chart.update_layout(
        barmode="group", yaxis={"range": [0, 1], "tickformat": ".0%", "title": "median share in the lungs"}, height=360
    )
    st.plotly_chart(chart, width="stretch", key="heatmap-in-lungs")
    st.markdown(heatmap_in_lungs_table(reports))
else:
    st.info("The reports hold no heatmap-in-lungs figures (they were made without the lung segmenter).")

st.header("Chest X-ray gate")
st.markdown(
    "Images that do not look like frontal chest X-rays are flagged, and their probabilities hidden unless asked "
    "for. Share flagged, on real chest X-rays (should be small) and on non-X-ray images (should be large):"
)
st.markdown(gate_table(reports, find_gate_report(reports_dir)))
st.markdown(gate_breakdown_table(reports))
st.markdown(familiarity_section(find_familiarity_report(reports_dir)))

card_text = Path(__file__).resolve().parents[1] / "docs" / "model_card.md"
if card_text.exists():
    with st.expander("The full model card (data provenance, licences, splits, failure modes)"):
        st.markdown(card_text.read_text())
