"""Batch: many scans at once → one row per scan and backbone, downloadable as CSV."""

import streamlit as st

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

table = ui.batch_table([(upload.name, upload.getvalue()) for upload in uploads], chosen)
st.dataframe(table, width="stretch", hide_index=True)
st.download_button(
    "Download CSV", table.to_csv(index=False), file_name="covidnet_batch.csv", mime="text/csv", on_click="ignore"
)
