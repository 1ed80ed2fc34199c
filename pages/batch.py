"""Batch: many scans at once → one row per scan and backbone, downloadable as CSV."""

import pandas as pd
import streamlit as st

import covidnet
import ui

st.title("Batch analysis")
ui.disclaimer()
names = ui.require_trained()
chosen = st.multiselect("Backbones", names, default=names)
uploads = st.file_uploader(
    "Drop chest X-rays here", accept_multiple_files=True, help=ui.UPLOAD_HELP, key="batch-upload"
)
if not uploads or not chosen:
    st.stop()

rows = []
progress = st.progress(0.0, text="Analysing…")
for k, upload in enumerate(uploads):
    try:
        scan = covidnet.read_scan(upload.getvalue(), name=upload.name)
    except covidnet.CovidNetError as error:
        rows.append({"scan": upload.name, "error": str(error)})
    else:
        for backbone in chosen:
            result = ui.shared_model(backbone).analyze(scan, cam=None)
            rows.append({"scan": upload.name, **ui.table_row(result)})
    progress.progress((k + 1) / len(uploads), text=f"{k + 1} of {len(uploads)} scans")
table = pd.DataFrame(rows)
st.dataframe(table, width="stretch", hide_index=True)
st.download_button(
    "Download CSV", table.to_csv(index=False), file_name="covidnet_batch.csv", mime="text/csv", on_click="ignore"
)
