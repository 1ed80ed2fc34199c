"""Correct under load: the load benchmark (benchmarks/load.py) run small: eight headless-Chromium sessions
upload different real scans to one `streamlit run` server at once, and each gets exactly the result a
sequential run gives for its own scan."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SESSIONS, SCANS_PER_SESSION = 8, 2
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "load.py"


def test_concurrent_sessions_each_get_their_own_sequential_result(chromium, tmp_path):
    out = tmp_path / "load.json"
    command = [sys.executable, str(SCRIPT), "--sessions", str(SESSIONS),
               "--scans-per-session", str(SCANS_PER_SESSION), "--out", str(out)]  # fmt: skip
    subprocess.run(command, check=True, timeout=900)
    result = json.loads(out.read_text())
    assert result["analyses"] == SESSIONS * SCANS_PER_SESSION
    assert result["sessions"] == SESSIONS
    assert result["mismatches"] == []
    assert result["server_rss_mb"]["peak"] >= result["server_rss_mb"]["idle"] > 0
