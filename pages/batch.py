"""Batch: many scans at once → the CLI's rows (one per scan and backbone, and their ensemble), downloadable as the
CLI's CSV."""

import streamlit as st

import ui
from covidnet.scoring.rows import csv_text

ui.app_navigation()

st.title("Batch analysis")
ui.disclaimer()
names = ui.require_trained()
chosen = st.multiselect("Backbones", names, default=names)
heatmaps = st.toggle(
    "Heatmaps", help="Make each backbone's heatmap to measure how much of it lies inside the lungs (slower)"
)
uploads = st.file_uploader(
    "Drop chest X-rays here", accept_multiple_files=True, help=ui.UPLOAD_HELP, key="batch-upload"
)
if not uploads or not chosen:
    st.stop()

rows = ui.batch_rows([(upload.name, upload.getvalue()) for upload in uploads], chosen, heatmaps=heatmaps)
refused = sorted({row["scan"] for row in rows if row.get("flagged")})
show_refused = False
if refused:
    st.error(
        f"The chest X-ray gate refused {len(refused)} of {len(uploads)} scans ({', '.join(refused)}): they get no "
        "class, and their probabilities are not meaningful. The flagged column says why; the warnings say more."
    )
    show_refused = st.checkbox("Show their probabilities anyway", key="batch-anyway")
st.dataframe(ui.batch_table(rows, show_refused=show_refused), width="stretch", hide_index=True)
st.download_button("Download CSV", csv_text(rows), file_name="covidnet_batch.csv", mime="text/csv", on_click="ignore")
