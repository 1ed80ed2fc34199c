"""Batched scoring on one machine: scans are read and prepared in a thread pool while the models run on batches.

Reading (``read_scan``) and the preparation of each model that does not crop to the lungs (``Predictor.prepare``)
run in worker threads a bounded number of scans ahead of the models, so at most
``AHEAD`` batches of decoded scans are held at once, however long the listing. Each batch then has its lungs found
in one forward pass of the lung segmenter (once per scan, however many models; each mask cleaned up in the
threads), lung-crop models are prepared, and it goes through every model in one ``Predictor.analyze_batch`` (one
forward pass, the gate on the batch); its results come out together, in input order, as one block, with the
ensemble of each scan's analyses after them when there are several models. Batch size 1 is the one-scan-at-a-time
path: no threads, read then analyse.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple

from covidnet.assessment.unseen_facts import ensemble_threshold
from covidnet.errors import CovidNetError
from covidnet.inference.classifier import Prepared
from covidnet.inference.predictor import Predictor, load
from covidnet.inference.results import ENSEMBLE, Analysis, ensemble
from covidnet.io.preprocessing import same_preprocessing
from covidnet.io.reading import Scan, ScanSource, read_scan
from covidnet.lungs.segment import LungMask
from covidnet.models.checkpoints import trained_backbones
from covidnet.scoring.inputs import scan_paths
from covidnet.scoring.outputs import Finished
from covidnet.scoring.rows import Scored, heatmap_path

DEFAULT_BATCH_SIZE = 32
AHEAD = 2  # batches read ahead of the one the models are running on
PNG_COMPRESSION = 1  # zlib level of the overlay PNGs: several times faster than Pillow's default 6, files a bit larger
Item = tuple[str, ScanSource]  # (the scan's name in the rows, where to read it from)


@dataclass(frozen=True)
class _Read:
    """A scan read (and prepared for the models that need no lungs), or the reason it could not be read."""

    name: str
    scan: Scan | None
    error: str | None
    ready: dict[int, Prepared] | None = None  # predictor index → its input, for models that do not crop


class Block(NamedTuple):
    """The results of one batch, in input order."""

    scans: int  # how many scans the batch held
    results: list[Scored]


def score(
    paths: str | Path | Iterable[str | Path],
    *,
    backbones: str | Sequence[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    cam: str = "gradcam",
    heatmaps: Path | None = None,
    weights_dir: Path | None = None,
    workers: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Score scan files, folders, glob patterns or listings (CSV/Parquet with a ``path`` column) with each backbone
    (default: every one with trained weights), ``batch_size`` scans per forward pass.

    Yields one row per scan and backbone, ``{"scan", **Analysis.to_dict(), "heatmap"}``, then with several backbones
    their ensemble's (``Ensemble.to_dict()``), or ``{"scan", "error"}`` for a scan that cannot be read. ``cam`` with
    ``heatmaps`` (a folder) also writes each scan's overlay there.
    """
    names = [backbones] if isinstance(backbones, str) else list(backbones or trained_backbones(weights_dir))
    predictors = [load(name, weights_dir=weights_dir) for name in names]
    inputs = [paths] if isinstance(paths, (str, Path)) else paths
    items = [(path, path) for path in scan_paths(inputs)]
    below = ensemble_threshold(names, weights_dir) if len(names) > 1 else None
    blocks = score_blocks(
        items, predictors, batch_size=batch_size, cam=cam, heatmaps=heatmaps, workers=workers, ensemble_below=below
    )
    for block in blocks:
        yield from (result.row() for result in block.results)


def score_blocks(
    items: Iterable[Item],
    predictors: Sequence[Predictor],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    cam: str = "gradcam",
    heatmaps: Path | None = None,
    workers: int | None = None,
    done: Finished | None = None,
    measure: bool = False,
    ensemble_below: float | None = None,
) -> Iterator[Block]:
    """The results of each batch of ``items``, one block per batch: a ``Scored`` per scan and predictor (and their
    ensemble's, with several), or one per unreadable scan; the (scan, backbone) pairs in ``done`` are left out.
    ``workers`` reading threads (default: one per CPU); the ``cam`` heatmaps are made, and their overlays written,
    only when ``heatmaps`` names a folder; ``measure`` makes them without writing them (their share inside the lungs
    and the lung notes); ``ensemble_below`` is the ensemble's calibrated "uncertain" threshold
    (``covidnet.ensemble_threshold``), if one is known for these predictors."""
    if batch_size < 1:
        raise CovidNetError(f"The batch size must be at least 1, not {batch_size}.")
    explain = cam if heatmaps is not None or measure else None
    if heatmaps is not None:
        heatmaps.mkdir(parents=True, exist_ok=True)
    shared = _shared_preparation(predictors)

    def read(item: Item) -> _Read:
        return _read(item, predictors, shared)

    threads = ThreadPoolExecutor(workers or os.cpu_count()) if batch_size > 1 else nullcontext()
    with threads as pool:
        reads = map(read, items) if pool is None else _ahead(pool, read, items, AHEAD * batch_size)
        while chunk := list(islice(reads, batch_size)):
            inputs = _prepare(chunk, predictors, shared, map if pool is None else pool.map)
            results = _analyse(chunk, inputs, predictors, explain, heatmaps, done or Finished(), ensemble_below)
            drawn = [(r.analysis, r.heatmap) for r in results if r.heatmap is not None]
            list(map(_save_overlay, drawn) if pool is None else pool.map(_save_overlay, drawn))
            yield Block(len(chunk), results)


def _ahead(pool: Executor, work: Callable[[Item], _Read], items: Iterable[Item], ahead: int) -> Iterator[_Read]:
    """``map(work, items)`` run in ``pool`` up to ``ahead`` items before the consumer, in order."""
    running: deque = deque()
    for item in items:
        running.append(pool.submit(work, item))
        if len(running) > ahead:
            yield running.popleft().result()
    while running:
        yield running.popleft().result()


def _shared_preparation(predictors: Sequence[Predictor]) -> list[int]:
    """For each predictor, the first one with the same preprocessing and segmenter: its prepared input is shared."""
    return [
        next(k for k, q in enumerate(predictors) if same_preprocessing(q.meta, p.meta) and q.segmenter is p.segmenter)
        for p in predictors
    ]


def _read(item: Item, predictors: Sequence[Predictor], shared: list[int]) -> _Read:
    name, source = item
    try:
        scan = read_scan(source, name=name)
        uncropped = [k for k in set(shared) if not predictors[k].classifier.preprocessing.crops_to_lungs]
        ready = {k: predictors[k].prepare(scan) for k in uncropped}
    except CovidNetError as e:
        return _Read(name, None, str(e))
    return _Read(name, scan, None, ready)


def _prepare(
    chunk: list[_Read], predictors: Sequence[Predictor], shared: list[int], mapper: Callable = map
) -> list[list[Prepared]]:
    """For each predictor, the inputs of the chunk's readable scans: the lungs found in one batch per segmenter
    (each mask cleaned up by ``mapper``), attached to the inputs prepared while reading, and lung-crop models' inputs
    cut around them."""
    readable = [r for r in chunk if r.scan is not None]
    lungs: dict[int, list[LungMask | None]] = {}  # per segmenter
    for predictor in predictors:
        segmenter, key = predictor.segmenter, id(predictor.segmenter)
        if key in lungs:
            continue
        if segmenter is None:
            lungs[key] = [None] * len(readable)
        else:
            lungs[key] = segmenter.segment_batch([r.scan.image for r in readable], mapper=mapper)
    made: dict[int, list[Prepared]] = {}
    for k in shared:
        if k not in made:
            found = lungs[id(predictors[k].segmenter)]
            made[k] = [
                r.ready[k]._replace(lungs=mask) if k in r.ready else predictors[k].prepare(r.scan, mask)
                for r, mask in zip(readable, found, strict=True)
            ]
    return [made[k] for k in shared]


def _analyse(
    chunk: list[_Read],
    inputs: list[list[Prepared]],
    predictors: Sequence[Predictor],
    cam: str | None,
    heatmaps: Path | None,
    done: Finished,
    ensemble_below: float | None,
) -> list[Scored]:
    readable = [r for r in chunk if r.scan is not None]
    by_predictor = [
        p.analyze_batch([r.scan for r in readable], cam=cam, prepared=inputs[k]) if readable else []
        for k, p in enumerate(predictors)
    ]
    analyses = iter(zip(*by_predictor, strict=True))
    results = []
    for scan in chunk:
        if scan.scan is None:
            results.append(Scored(scan.name, error=scan.error))
            continue
        members = next(analyses)
        for predictor, analysis in zip(predictors, members, strict=True):
            if (scan.name, predictor.backbone) in done:
                continue
            drawn = analysis.heatmap is not None and heatmaps is not None
            path = heatmap_path(heatmaps, scan.name, predictor.backbone, cam) if drawn else None
            results.append(Scored(scan.name, analysis, heatmap=path))
        if len(members) > 1 and (scan.name, ENSEMBLE) not in done:
            results.append(Scored(scan.name, ensemble(members, ensemble_below)))
    return results


def _save_overlay(job: tuple[Analysis, Path]) -> None:
    analysis, path = job
    analysis.overlay().save(path, compress_level=PNG_COMPRESSION)
