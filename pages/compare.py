"""Compare backbones: one scan, every trained backbone side by side, and their ensemble."""

import math

import plotly.graph_objects as go
import streamlit as st

import covidnet
import ui

st.title("Compare backbones")
ui.disclaimer()
names = ui.require_trained()
cam = st.sidebar.selectbox("Heatmap method", covidnet.cam_methods())
outline = st.sidebar.toggle("Lung outline", value=True, help="Draw the border of the lungs the lung segmenter found")

chosen = ui.scan_input("compare")
if chosen is None:
    st.stop()
data, name = chosen
try:
    with st.spinner(f"Running {len(names)} backbones…"):
        scan, digest = covidnet.read_scan(data, name=name), ui.file_hash(data)
        results = {b: ui.analysis(digest, b, cam, None, scan) for b in names}
except covidnet.CovidNetError as error:
    st.error(str(error))
    st.stop()

if not ui.gate_passed([w for r in results.values() for w in r.warnings], key="compare-anyway"):
    st.stop()
combined = covidnet.ensemble(list(results.values()))
interest = covidnet.TASK.of_interest
covid = [r.probabilities[interest] for r in results.values()]
best = combined.prediction
summary = "All backbones agree" if combined.agree else "The backbones disagree"
st.subheader(f"Ensemble: {covidnet.display_name(best)} — {combined.probabilities[best]:.0%}")
st.markdown(
    f"{summary} ({', '.join(f'{b}: {covidnet.display_name(r.prediction)}' for b, r in results.items())}). "
    f"{covidnet.display_name(interest)} probability ranges "
    f"from {min(covid):.0%} to {max(covid):.0%} (spread {max(covid) - min(covid):.0%})."
)
ui.other_warnings(next(iter(results.values())).warnings)

labels = [covidnet.display_name(c) for c in covidnet.CLASSES]
per_row = len(results) if len(results) <= 3 else math.ceil(len(results) / 2)  # four backbones: a 2 × 2 grid
columns = [column for start in range(0, len(results), per_row) for column in st.columns(per_row)]
for column, (backbone, result) in zip(columns, results.items(), strict=False):
    with column:
        st.markdown(f"**{backbone}** — {covidnet.display_name(result.prediction)}")
        drawn = result.overlay(lung_outline=outline)
        st.image(drawn, caption=f"{cam} for {covidnet.display_name(result.target)}", width="stretch")
        ui.lung_share(result)
        figure = go.Figure(go.Bar(x=labels, y=list(result.probabilities.values()), texttemplate="%{y:.0%}"))
        figure.update_layout(
            yaxis={"range": [0, 1], "tickformat": ".0%"}, height=220, margin={"l": 10, "r": 10, "t": 10, "b": 10}
        )
        st.plotly_chart(figure, width="stretch", key=f"bars-{backbone}")
        st.caption(f"{result.seconds:.2f} s")
