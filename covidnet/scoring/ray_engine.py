"""``covidnet predict --engine ray``: the same batched scoring with Ray Data, on a cluster or on this machine.

``ray.data`` reads the listing (a CSV or Parquet listing as given, else the scan paths the inputs name),
``map_batches`` runs the models in a pool of actors (each loads the weights once and scores its batches with
``score_blocks``, as the local engine does), and the rows are written as Parquet parts in the flat form, so the
results equal the local engine's. ``ray`` is imported only here (``pip install "covidnet[ray]"``).

The pool is sized from the cluster's CPUs and leaves ``READ_CPUS`` to the read and write tasks: on a 2-CPU local
Ray, a pool that held every CPU (2 actors of one CPU) starved them and never finished.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from covidnet.assessment.unseen_facts import ensemble_threshold
from covidnet.errors import CovidNetError
from covidnet.inference.predictor import load
from covidnet.scoring.inputs import LISTING_SUFFIXES, PATH_COLUMN, resolve, scan_paths
from covidnet.scoring.outputs import Finished, finished, table_schema
from covidnet.scoring.pipeline import score_blocks
from covidnet.scoring.rows import flat

READ_CPUS = 1.0  # CPUs of the cluster left to Ray Data's read and write tasks
MIN_ACTORS = 2


class ScanScorer:
    """One model actor: loads the backbones once, then scores each batch of paths it is given."""

    def __init__(self, backbones: Sequence[str], options: dict[str, Any], weights_dir: Path | None, done: Finished):
        self.predictors = [load(name, weights_dir=weights_dir) for name in backbones]
        self.options = options
        self.done = done

    def __call__(self, batch: dict[str, Any]) -> Any:
        """A pyarrow table of the batch's flat rows."""
        import pyarrow as pa

        items = [(str(path), str(path)) for path in batch[PATH_COLUMN]]
        blocks = score_blocks(items, self.predictors, batch_size=len(items), done=self.done, **self.options)
        rows = [flat(result.row()) for block in blocks for result in block.results]
        return pa.Table.from_pylist(rows, schema=table_schema())


def pool_size(cluster_cpus: float, actors: int | None = None) -> tuple[int, float]:
    """(actors, CPUs per actor) for a cluster with ``cluster_cpus``: ``actors`` share the CPUs the read tasks leave
    (at least half of them). By default one actor per such CPU, and at least two, so that one actor reads its
    batch while another runs its models (on 2 CPUs, 2 actors of half a CPU each beat 1 of one CPU)."""
    spare = max(cluster_cpus - READ_CPUS, cluster_cpus / 2)
    count = actors or max(MIN_ACTORS, int(spare))
    return count, spare / count


def score_with_ray(
    inputs: Sequence[str | Path],
    backbones: Sequence[str],
    out: Path | None,
    *,
    batch_size: int,
    cam: str = "gradcam",
    heatmaps: Path | None = None,
    weights_dir: Path | None = None,
    actors: int | None = None,
    resume: bool = False,
) -> int:
    """Score ``inputs`` with Ray Data into the Parquet folder ``out``; the number of unreadable scans there.

    Connects to the cluster at ``$RAY_ADDRESS`` (or starts a local one) unless Ray is already initialised.
    ``heatmaps`` and the weights must be on paths every node sees.
    """
    if out is None or out.suffix.lower() != ".parquet":
        raise CovidNetError("--engine ray writes Parquet: give --out FILE.parquet.")
    if out.exists() and not resume:
        raise CovidNetError(f"{out} exists: pass --resume to continue it, or choose another --out.")
    try:
        import ray
    except ImportError:
        raise CovidNetError('--engine ray needs Ray Data: pip install "covidnet[ray]".') from None
    if not ray.is_initialized():
        ray.init()
    done = finished(out) if resume else Finished()
    count, cpus = pool_size(ray.cluster_resources().get("CPU", 1.0), actors)
    listing = _listing(ray, inputs)
    if done.pairs:
        listing = listing.filter(lambda row: not done.complete(row[PATH_COLUMN], backbones))
    below = ensemble_threshold(list(backbones), weights_dir) if len(backbones) > 1 else None
    options = {"cam": cam, "heatmaps": heatmaps, "workers": max(1, round(cpus)), "ensemble_below": below}
    scored = listing.map_batches(
        ScanScorer,
        fn_constructor_args=(list(backbones), options, weights_dir, done),
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=count),
        num_cpus=cpus,
    )
    scored.write_parquet(str(out))
    return sum(backbone is None for _, backbone in finished(out).pairs)


def _listing(ray, inputs: Sequence[str | Path]):
    """A dataset with a ``path`` column: Ray Data reads a single listing file itself; other inputs are expanded
    here, as the local engine expands them."""
    given = Path(inputs[0])
    if len(inputs) == 1 and given.is_file() and given.suffix.lower() in LISTING_SUFFIXES:
        read = ray.data.read_parquet if given.suffix.lower() == ".parquet" else ray.data.read_csv
        rows = read(str(given)).select_columns([PATH_COLUMN])
        return rows.map(lambda row: {PATH_COLUMN: str(resolve(str(row[PATH_COLUMN]), given))})
    return ray.data.from_items([{PATH_COLUMN: path} for path in scan_paths(inputs)])
