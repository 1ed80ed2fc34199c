"""Any file survives: 30+ odd, broken or hostile inputs through the API, the CLI and the app.

Each gives a correct analysis or one actionable error line (never a traceback, hang or crash), within
10 seconds and 2 GB of peak memory.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scan_files import odd_inputs

import covidnet
from covidnet.cli import main

CASES = odd_inputs()
NAMES = [name for name, _ in CASES]
SECONDS, PEAK_MB = 10.0, 2048


def test_there_are_at_least_30_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize(("name", "data"), CASES, ids=NAMES)
def test_api_gives_an_analysis_or_one_clear_error_quickly(name, data, weights_dir):
    model = covidnet.load("resnet18", weights_dir=weights_dir)
    started = time.perf_counter()
    try:
        result = model.analyze(covidnet.read_scan(data, name=name))
    except covidnet.ScanError as error:
        message = str(error)
        assert name in message and "\n" not in message and len(message) < 300
    else:
        assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        assert result.heatmap.shape == result.overlay().size[::-1]
    assert time.perf_counter() - started < SECONDS


@pytest.mark.slow
def test_cli_gives_one_row_per_case_and_never_a_traceback(weights_dir, tmp_path):
    for name, data in CASES:
        (tmp_path / name).write_bytes(data)
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["--weights-dir", str(weights_dir), "predict", *(str(tmp_path / n) for n in NAMES),
                     "--backbone", "resnet18", "--json"])  # fmt: skip
    rows = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert code == 1 and [Path(r["scan"]).name for r in rows] == NAMES
    assert all(("error" in r) != ("probabilities" in r) for r in rows)
    assert "Traceback" not in stderr.getvalue()


PEAK_PROBE = """
import sys
sys.path.insert(0, sys.argv[2])
import covidnet
from scan_files import odd_inputs
model = covidnet.load("resnet18", weights_dir=sys.argv[1])
for name, data in odd_inputs():
    try:
        model.analyze(covidnet.read_scan(data, name=name))
    except covidnet.ScanError:
        pass
print(int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) // 1024)
"""


@pytest.mark.slow
def test_peak_memory_over_every_case_stays_under_2_gb(weights_dir):
    tests = str(Path(__file__).parent)
    result = subprocess.run([sys.executable, "-c", PEAK_PROBE, str(weights_dir), tests], capture_output=True,
                            text=True, timeout=300, check=True)  # fmt: skip
    assert int(result.stdout.split()[-1]) < PEAK_MB


@pytest.mark.slow
def test_the_app_shows_an_analysis_or_an_error_for_every_case(weights_dir, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("COVIDNET_WEIGHTS", str(weights_dir))
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=60)
    at.run()
    for name, data in CASES:
        at.file_uploader[0].set_value((name, data, "application/octet-stream"))
        started = time.perf_counter()
        at.run()
        assert not at.exception, (name, at.exception)
        assert time.perf_counter() - started < SECONDS, name
        assert at.error or at.get("plotly_chart"), name
