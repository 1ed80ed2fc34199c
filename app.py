"""CovidNet's Streamlit app: the page frame and navigation. Pages live in pages/; model code in covidnet/."""

import streamlit as st

import ui

st.set_page_config(page_title="CovidNet — chest X-ray demo", page_icon=":material/pulmonology:", layout="wide")
with st.sidebar:
    st.warning(ui.DISCLAIMER)

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
