"""The Ray engine on this machine: 1 vs 2 model actors on a local 2-CPU Ray (`ray.init(num_cpus=2)`), next to the
local engine on the same listing, in interleaved rounds. Writes benchmarks/ray_actors.json.

    python benchmarks/ray_actors.py [--scans 256] [--rounds 3]

Each Ray run is a whole `covidnet predict --engine ray` job after Ray has started: the actors load the weights,
Ray Data reads the CSV listing, scores it and writes Parquet. The local engine scores the same listing in this
process (models already loaded) into Parquet. Needs `pip install "covidnet[ray]"`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import ray
from run import ROOT, scans

import covidnet
from covidnet.inference.predictor import load
from covidnet.scoring.outputs import open_output
from covidnet.scoring.pipeline import DEFAULT_BATCH_SIZE, score_blocks
from covidnet.scoring.ray_engine import pool_size, score_with_ray

RAY_CPUS = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scans", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "ray_actors.json")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="covidnet-ray-"))
    listing = folder / "listing.csv"
    paths = [str(p) for p in scans(args.scans)]
    listing.write_text("path\n" + "".join(f"{p}\n" for p in paths))
    backbones = covidnet.trained_backbones()
    predictors = [load(name) for name in backbones]
    ray.init(num_cpus=RAY_CPUS, include_dashboard=False)

    def local(out: Path) -> None:
        output = open_output(out, resume=False)
        for block in score_blocks([(p, p) for p in paths], predictors):
            output.write([r.row() for r in block.results])

    def on_ray(actors: int):
        def job(out: Path) -> None:
            score_with_ray([listing], backbones, out, batch_size=DEFAULT_BATCH_SIZE, actors=actors)

        return job

    works = {"local_engine": local, "ray_1_actor": on_ray(1), "ray_2_actors": on_ray(2)}
    times: dict[str, list[float]] = {name: [] for name in works}
    loads = [os.getloadavg()[0]]
    for k in range(args.rounds):
        for name, work in works.items():
            started = time.perf_counter()
            work(folder / f"{name}-{k}.parquet")
            times[name].append(time.perf_counter() - started)
    loads.append(os.getloadavg()[0])
    ray.shutdown()
    shutil.rmtree(folder)
    result = {
        "ray_cpus": RAY_CPUS,
        "backbones": backbones,
        "scans": len(paths),
        "batch_size": DEFAULT_BATCH_SIZE,
        "rounds": args.rounds,
        "pools": {"ray_1_actor": pool_size(RAY_CPUS, 1), "ray_2_actors": pool_size(RAY_CPUS, 2)},
        "load_average": loads,
    }
    for name, seconds in times.items():
        median = statistics.median(seconds)
        result[name] = {"seconds": seconds, "median_seconds": median, "scans_per_second": len(paths) / median}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{len(paths)} scans × {', '.join(backbones)}, medians of {args.rounds} rounds (load average "
          f"{loads[0]:.1f} → {loads[1]:.1f}):")  # fmt: skip
    for name in works:
        print(f"  {name:<13} {result[name]['median_seconds']:6.1f} s  {result[name]['scans_per_second']:5.1f} scans/s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
