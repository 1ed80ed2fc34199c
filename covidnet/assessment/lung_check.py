"""The gate's lung check measured on its own: how often it fires on frontal chest X-rays (false alarms) and on
images that are not chest X-rays (the more the better), for ``covidnet gate-report``."""

from __future__ import annotations

from collections.abc import Iterable

from tqdm import tqdm

from covidnet.inference.gate import looks_lateral
from covidnet.io.reading import Scan
from covidnet.lungs.segment import LungSegmenter


def lung_check_counts(segmenter: LungSegmenter, scans: Iterable[Scan], total: int | None = None) -> dict[str, int]:
    """How many of ``scans`` the lung check lets through, calls "no lung fields found", or calls a lateral view."""
    counts = {"n": 0, "no_lung_fields": 0, "lateral_view": 0}
    for scan in tqdm(scans, total=total, desc="lung check", unit="scan"):
        lungs = segmenter.segment(scan.image)
        counts["n"] += 1
        if not lungs.plausible:
            counts["lateral_view" if looks_lateral(lungs) else "no_lung_fields"] += 1
    return counts
