"""The lungs' bounding box of every training image, for checkpoints trained on lung crops.

Boxes are found once with the installed lung segmenter and cached in a JSON file named after the
segmenter's sha256, so every run (and every backbone) crops the same images the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from covidnet.data.records import Record
from covidnet.io.preprocessing import Box
from covidnet.io.reading import read_scan
from covidnet.lungs.segment import LungSegmenter


def lung_boxes(records: list[Record], segmenter: LungSegmenter, cache_dir: Path) -> list[Box | None]:
    """Each record's plausible lungs' box on its display image (None: no plausible lungs found)."""
    cache = Path(cache_dir) / f"lung_boxes.{segmenter.meta.sha256[:12]}.json"
    known: dict[str, list[int] | None] = json.loads(cache.read_text()) if cache.exists() else {}
    missing = [r for r in records if str(r.path) not in known]
    for record in tqdm(missing, desc="finding lungs", unit="scan", disable=not missing):
        lungs = segmenter.segment(read_scan(record.path).image)
        known[str(record.path)] = list(lungs.box) if lungs.plausible and lungs.box else None
    if missing:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(known))
    return [None if known[str(r.path)] is None else tuple(known[str(r.path)]) for r in records]
