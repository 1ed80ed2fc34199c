"""Analyse one scan: calibrated probabilities and a Grad-CAM heatmap from one backbone."""

import io

import plotly.graph_objects as go
import streamlit as st

import covidnet
import ui

ui.app_navigation()

st.title("Analyse a chest X-ray")
ui.disclaimer()
names = ui.require_trained()

with st.sidebar:
    backbone = st.selectbox("Backbone", names, index=names.index(covidnet.default_backbone(names)))
    cam = st.selectbox("Heatmap method", covidnet.cam_methods())
    opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.4, 0.05)
    outline = st.toggle("Lung outline", value=True, help="Draw the border of the lungs the lung segmenter found")
    targets = {"The prediction": None} | {covidnet.display_name(c): c for c in covidnet.CLASSES}
    target = targets[st.selectbox("Heatmap explains", list(targets))]

chosen = ui.scan_input("analyse")
if chosen is None:
    st.stop()
data, name = chosen
try:
    with st.spinner("Analysing…"):
        scan = covidnet.read_scan(data, name=name)
        result = ui.analysis(ui.file_hash(data), backbone, cam, target, scan)
except covidnet.CovidNetError as error:
    st.error(str(error))
    st.stop()

meta = ui.shared_model(backbone).meta
if not ui.gate_passed(result.warnings, key="analyse-anyway"):
    st.image(scan.image, caption=name, width=480)
    st.stop()
top = result.probabilities[result.prediction]
if result.uncertain:
    basis = ui.threshold_basis(meta.thresholds) if result.uncertain_below is not None else ui.NO_THRESHOLD
    shown = ui.share_below(top, result.uncertainty_threshold)
    st.warning(
        f"**Uncertain.** The most likely class, {covidnet.display_name(result.prediction)}, has only {shown}. "
        f"Below {result.uncertainty_threshold:.0%} this model does not answer: {basis}."
    )
else:
    st.subheader(f"{covidnet.display_name(result.prediction)} — {top:.0%}")
    ui.measured_limit(backbone, result.prediction)
ui.sample_disagreement(name, result)
ui.other_warnings(result.warnings)
ui.unfamiliar(result)

left, right = st.columns(2)
left.image(
    scan.image, caption=f"{name} ({scan.original_size[0]}×{scan.original_size[1]} {scan.format})", width="stretch"
)
drawn = result.overlay(opacity, lung_outline=outline)
right.image(drawn, caption=f"{cam} for {covidnet.display_name(result.target)} ({backbone})", width="stretch")
with right:
    ui.lung_share(result)

labels = [covidnet.display_name(c) for c in result.probabilities]
figure = go.Figure(go.Bar(x=list(result.probabilities.values()), y=labels, orientation="h", texttemplate="%{x:.1%}"))
figure.update_layout(
    xaxis={"range": [0, 1], "tickformat": ".0%"},
    height=220,
    margin={"l": 10, "r": 10, "t": 30, "b": 10},
    title="Calibrated probabilities",
)
st.plotly_chart(figure, width="stretch")
st.caption(f"Computed in {result.seconds:.2f} s. Temperature {meta.temperature:.2f} (fitted on validation).")
ui.signs_explained(result, meta)

if scan.dicom_tags:
    st.markdown("**DICOM tags for reading** (patient data is never shown)")
    st.table({"tag": list(scan.dicom_tags), "value": list(scan.dicom_tags.values())})

png = io.BytesIO()
drawn.save(png, format="PNG")
download_png, download_json = st.columns(2)
# on_click="ignore": a download does not rerun the page (a rerun would also cancel a download in flight).
download_png.download_button(
    "Download heatmap (PNG)",
    png.getvalue(),
    file_name=f"{name}.{backbone}.{cam}.png",
    mime="image/png",
    on_click="ignore",
)
download_json.download_button(
    "Download report (JSON)",
    ui.report_json(name, result, meta),
    file_name=f"{name}.{backbone}.json",
    mime="application/json",
    on_click="ignore",
)
