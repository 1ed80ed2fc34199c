"""Security: patient data never shown or logged, uploads never written to disk, limits in config and code."""

from __future__ import annotations

import builtins
import logging
from pathlib import Path

import pytest
import streamlit as st
import tomllib
from scan_files import dicom
from streamlit.testing.v1 import AppTest

from covidnet.io.reading import MAX_FILE_BYTES

ROOT = Path(__file__).resolve().parents[1]
PATIENT = ("Doe^Jane", "PID-12345", "19700101")


@pytest.fixture
def app(weights_dir, monkeypatch):
    monkeypatch.setenv("COVIDNET_WEIGHTS", str(weights_dir))
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    return at


def xray_pixels(path: Path):
    """A real chest X-ray as 12-bit pixels (a made-up ramp has no lungs, so the gate would hide the analysis)."""
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(path).convert("L"), dtype=np.uint16) * 16


def test_dicom_patient_data_is_never_shown_or_logged(app, caplog, capsys, real_scans):
    caplog.set_level(logging.DEBUG)
    app.file_uploader[0].set_value(("patient.dcm", dicom(xray_pixels(real_scans[1])), "application/dicom"))
    app.run()
    assert not app.exception
    shown = str([element.proto for element in app._tree.main.children.values()])
    assert "ViewPosition" in shown  # the reading tags are shown …
    captured = capsys.readouterr()
    for value in PATIENT:  # … the patient's are not, anywhere
        assert value not in shown and value not in caplog.text and value not in captured.out + captured.err


def test_an_upload_is_analysed_without_writing_any_file(app, monkeypatch, real_scans):
    pixels = xray_pixels(real_scans[1])
    real_open = builtins.open

    def no_writes(file, mode="r", *args, **kwargs):
        assert not any(flag in mode for flag in "wax+"), f"wrote {file}"
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_writes)
    app.file_uploader[0].set_value(("scan.dcm", dicom(pixels), "application/dicom"))
    app.run()
    assert not app.exception and app.get("plotly_chart")


def test_upload_limits_and_xsrf_protection_are_configured():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["enableXsrfProtection"] is True
    assert config["server"]["maxUploadSize"] * 2**20 == MAX_FILE_BYTES
    assert config["browser"]["gatherUsageStats"] is False
    assert config["client"]["showErrorDetails"] == "none"
