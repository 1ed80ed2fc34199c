"""CovidNet's Streamlit app: the page frame and navigation. Pages live in pages/; model code in covidnet/."""

import streamlit as st

from covidnet import ui

st.set_page_config(page_title="CovidNet — chest X-ray demo", page_icon="🫁", layout="wide")
with st.sidebar:
    st.warning(ui.DISCLAIMER)

page = st.navigation(
    [
        st.Page("pages/analyse.py", title="Analyse", icon="🔍", default=True),
        st.Page("pages/compare.py", title="Compare backbones", icon="⚖️"),
        st.Page("pages/batch.py", title="Batch", icon="🗂️"),
        st.Page("pages/model_card.py", title="Model card", icon="📋"),
        st.Page("pages/about.py", title="About", icon="ℹ️"),
    ]
)
page.run()
