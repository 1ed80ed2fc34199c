"""CovidNet's Streamlit app: the page frame and navigation. Pages live in pages/ (each shows the disclaimer once,
under its title); model code in covidnet/."""

from pathlib import Path

import streamlit as st

ICON = Path(__file__).resolve().parent / "assets" / "favicon.png"  # served by the app: no request to an outside host

st.set_page_config(page_title="CovidNet — chest X-ray demo", page_icon=str(ICON), layout="wide")
page = st.navigation(
    [
        st.Page("pages/analyse.py", title="Analyse", icon=":material/search:", default=True),
        st.Page("pages/compare.py", title="Compare backbones", icon=":material/compare:"),
        st.Page("pages/batch.py", title="Batch", icon=":material/folder_open:"),
        st.Page("pages/model_card.py", title="Model card", icon=":material/fact_check:"),
        st.Page("pages/about.py", title="About", icon=":material/info:"),
    ]
)
page.run()
