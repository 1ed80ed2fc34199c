"""What finding the lungs in one segmenter pass per batch changed: batched scoring (``score_blocks``) as it is now,
against the pipeline of commit 8db3802, which found each scan's lungs in the reading threads, one scan at a time.
Interleaved rounds over the same scans, models loaded; writes benchmarks/segment_in_batches.json.

    python benchmarks/segment_in_batches.py [--rounds 6]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from run import ROOT, medians, scans

import covidnet
from covidnet.inference.predictor import Predictor
from covidnet.scoring import pipeline

BEFORE = "8db3802"  # the last commit whose reading threads found the lungs


def pipeline_at(commit: str):
    """``covidnet/scoring/pipeline.py`` as it was at ``commit``, imported as a module of its own."""
    source = subprocess.run(["git", "show", f"{commit}:covidnet/scoring/pipeline.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "pipeline_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("pipeline_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


class _Before(Predictor):
    """A predictor with the ``find_lungs`` that the pipeline of ``BEFORE`` calls in its reading threads."""

    def find_lungs(self, scan: covidnet.Scan):
        return None if self.segmenter is None else self.segmenter.segment_batch([scan.image])[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "segment_in_batches.json")
    args = parser.parse_args()
    before = pipeline_at(BEFORE)
    items = [(str(p), p) for p in scans(96)]
    result = {"scans": len(items), "rounds": args.rounds, "before": BEFORE, "backbones": {}}
    for name in ("resnet18", "densenet121"):
        model = covidnet.load(name)
        then = _Before(model.classifier, model.gate, model.segmenter)
        seconds = medians(
            {
                "before": lambda then=then: list(before.score_blocks(items, [then])),
                "now": lambda model=model: list(pipeline.score_blocks(items, [model])),
            },
            repeats=args.rounds,
            warmup=1,
        )
        row = {f"{k}_scans_per_second": len(items) / v for k, v in seconds.items()}
        row["speedup"] = seconds["before"] / seconds["now"]
        result["backbones"][name] = row
        print(f"{name}: before {row['before_scans_per_second']:.1f} scans/s, now {row['now_scans_per_second']:.1f} "
              f"scans/s ({row['speedup']:.2f}x)")  # fmt: skip
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
