"""Compare backbones: one scan, every trained backbone side by side, and their ensemble."""

import math

import streamlit as st

import covidnet
import ui

ui.app_navigation()

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
combined = covidnet.ensemble(list(results.values()), covidnet.ensemble_threshold(list(results)))
interest = covidnet.TASK.of_interest
covid = [r.probabilities[interest] for r in results.values()]
best = combined.prediction
top = combined.probabilities[best]
if combined.uncertain:
    st.warning(
        f"**Ensemble: uncertain.** Its most likely class, {covidnet.display_name(best)}, has only {top:.0%}, "
        f"below its threshold of {combined.uncertainty_threshold:.0%}."
    )
else:
    st.subheader(f"Ensemble: {covidnet.display_name(best)} — {top:.0%}")
answers = ", ".join(f"{b}: {ui.answer(r)}" for b, r in results.items())
agreement = "All backbones give the same class" if combined.agree else "The backbones give different classes"
st.markdown(
    f"{agreement} ({answers}). {covidnet.display_name(interest)} probability ranges "
    f"from {min(covid):.0%} to {max(covid):.0%} (spread {max(covid) - min(covid):.0%})."
)
ui.agreement_caveat(combined.agree)
ui.other_warnings(next(iter(results.values())).warnings)

left, right = st.columns([1, 2])
left.image(scan.image, caption=f"{name} (original)", width="stretch")
right.plotly_chart(ui.probability_bars(results, combined), width="stretch", key="bars-all")

per_row = len(results) if len(results) <= 3 else math.ceil(len(results) / 2)  # four backbones: a 2 × 2 grid
columns = [column for start in range(0, len(results), per_row) for column in st.columns(per_row)]
for column, (backbone, result) in zip(columns, results.items(), strict=False):
    with column:
        st.markdown(f"**{backbone}** — {ui.answer(result)}")
        drawn = result.overlay(lung_outline=outline)
        st.image(drawn, caption=f"{cam} for {covidnet.display_name(result.target)}", width="stretch")
        ui.lung_share(result)
        ui.unfamiliar(result)
        st.caption(f"{result.seconds:.2f} s")
