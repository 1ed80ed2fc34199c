"""CovidNet's Streamlit app: upload a chest X-ray, see calibrated probabilities and a Grad-CAM heatmap.

A thin layer over the ``covidnet`` package: no model code lives here.
"""

import streamlit as st

import covidnet

DISCLAIMER = (
    "**Research and teaching demo — not a medical device.** CovidNet must not be used to diagnose, "
    "treat or triage anyone. Its probabilities come from models trained on public datasets with known biases."
)

st.set_page_config(page_title="CovidNet", page_icon="🫁", layout="wide")
st.title("CovidNet: chest X-ray classification with Grad-CAM")
st.warning(DISCLAIMER)


@st.cache_resource(show_spinner="Loading model…")
def shared_model(name: str) -> covidnet.Predictor:
    """One model per backbone, shared by every session."""
    return covidnet.load(name)


trained = covidnet.trained_backbones()
if not trained:
    st.info(
        "No trained weights are installed yet, so CovidNet has nothing meaningful to show. "
        "Train a model with `covidnet train --backbone resnet18`."
    )
    st.stop()

with st.sidebar:
    backbone = st.selectbox("Backbone", trained)
    cam = st.selectbox("Heatmap method", covidnet.cam_methods())
    opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.4, 0.05)

upload = st.file_uploader("Chest X-ray (PNG, JPEG, BMP, TIFF, WebP or DICOM)")
if upload is not None:
    try:
        with st.spinner("Analysing…"):
            scan = covidnet.read_scan(upload.getvalue(), name=upload.name)
            result = shared_model(backbone).analyze(scan, cam=cam, opacity=opacity)
    except covidnet.CovidNetError as error:
        st.error(str(error))
        st.stop()
    scan_col, heat_col = st.columns(2)
    scan_col.image(scan.image, caption="Scan", width="stretch")
    heat_col.image(result.overlay, caption=f"{cam} heatmap for {covidnet.display_name(result.target)}", width="stretch")
    top = result.prediction
    st.subheader(f"{covidnet.display_name(top)}: {result.probabilities[top]:.0%}")
    for label, probability in result.probabilities.items():
        st.progress(probability, text=f"{covidnet.display_name(label)} {probability:.1%}")
    for warning in result.warnings:
        st.warning(warning["message"])
