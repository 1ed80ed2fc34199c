"""Correct under load: eight headless-Chromium sessions upload different real scans to one `streamlit run`
server at once, and each gets exactly the result a sequential run gives for its own scan."""

from __future__ import annotations

import pytest

from benchmarks.load import mismatches, run_load, serve_app, ungated_scans

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SESSIONS, SCANS_PER_SESSION = 8, 2


def test_concurrent_sessions_each_get_their_own_sequential_result(weights_dir, chromium):
    expected = ungated_scans(SESSIONS * SCANS_PER_SESSION, "resnet18", weights_dir)
    paths = list(expected)
    work = [paths[i::SESSIONS] for i in range(SESSIONS)]
    with serve_app(weights_dir) as (url, pid):
        uploads, rss_samples = run_load(url, pid, work)
    assert sorted(u.scan for u in uploads) == sorted(p.name for p in paths)
    assert {u.session for u in uploads} == set(range(SESSIONS))
    assert mismatches(uploads, {p.name: v for p, v in expected.items()}) == []
    assert rss_samples, "the server's memory was never sampled"
