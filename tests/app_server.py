"""Helpers for tests and benchmarks that drive the real app: Debian's Chromium with the flags this machine
needs, and `streamlit run app.py` on a free local port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_app(
    weights_dir: Path | None = None, *, python: str = sys.executable, env: dict | None = None, timeout: float = 60
) -> Iterator[tuple[str, int]]:
    """`streamlit run app.py` on a free local port; yields (url, server pid) once it answers its health check."""
    port = free_port()
    env = {**os.environ, **(env or {})}
    if weights_dir is not None:
        env["COVIDNET_WEIGHTS"] = str(weights_dir)
    command = [python, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true"]  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if time.time() > deadline or process.poll() is not None:
                    raise RuntimeError(f"streamlit did not start within {timeout:.0f} s") from None
                time.sleep(0.5)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=20)


def open_sidebar_page(page, title: str, timeout_ms: float = 60_000, *, heading: str | None = None) -> None:
    """Click the sidebar link ``title`` and wait until that page's own heading (``heading``, default ``title``) is
    drawn. The link's text is on every page, so waiting for the text alone returns at once and the next upload lands
    on the page being left."""
    page.get_by_role("link", name=title).click()
    page.get_by_role("heading", name=heading or title, exact=True).wait_for(timeout=timeout_ms)
