"""Correct under load: 8 concurrent app sessions on the shared models each see exactly their own result."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from load import run_load


@pytest.mark.slow
def test_eight_sessions_get_their_own_results_and_memory_stays_bounded(weights_dir, monkeypatch):
    monkeypatch.setenv("COVIDNET_WEIGHTS", str(weights_dir))
    result = run_load(sessions=8, analyses=48)
    assert result["analyses"] == 48
    # The analysis cache is bounded (64 entries of about 1 MB): the second half must not keep growing.
    assert result["rss_mb_end"] - result["rss_mb_after_half"] < 150, result
