"""What was tried to make analysis fast on a 2-core CPU: `python benchmarks/experiments.py`.

Each variant is timed on the same scan in the same run (medians of 10 after warm-up), against the
shipped configuration: channels_last, thread counts, bf16 autocast, inference_mode versus no_grad, and
running the Compare page's backbones in parallel threads instead of one after another.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from run import median_seconds, scans, weights_folder

import covidnet
from covidnet.checkpoints import load_checkpoint
from covidnet.predict import Predictor

OUT = Path(__file__).parent / "experiments.json"


def fresh(name: str, weights: Path) -> Predictor:
    return Predictor(*load_checkpoint(name, weights))


def main() -> None:
    weights, note = weights_folder()
    scan = covidnet.read_scan(scans(1)[0])
    rows: dict[str, dict[str, float]] = {}
    for name in covidnet.trained_backbones(weights):
        baseline = fresh(name, weights)
        x = baseline.tensor(scan)
        last = fresh(name, weights)
        last.model.to(memory_format=torch.channels_last)
        row = {
            "analyze": median_seconds(lambda m=baseline: m.analyze(scan)),
            "analyze_channels_last": median_seconds(lambda m=last: m.analyze(scan)),
            "forward_inference_mode": median_seconds(lambda m=baseline, x=x: _forward(m, x, torch.inference_mode)),
            "forward_no_grad": median_seconds(lambda m=baseline, x=x: _forward(m, x, torch.no_grad)),
            "forward_bf16_autocast": median_seconds(lambda m=baseline, x=x: _forward_bf16(m, x)),
        }
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        row["analyze_1_thread"] = median_seconds(lambda m=baseline: m.analyze(scan))
        torch.set_num_threads(threads)
        rows[name] = row
    models = [fresh(n, weights) for n in covidnet.trained_backbones(weights)]
    compare = {
        "sequential": median_seconds(lambda: [m.analyze(scan) for m in models]),
        "parallel_threads": median_seconds(lambda: _parallel(models, scan)),
    }
    result = {"weights": note, "threads": torch.get_num_threads(), "per_backbone": rows, "compare_page": compare}
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    for name, row in rows.items():
        print(name, "  ".join(f"{k} {v * 1e3:.1f} ms" for k, v in row.items()))
    print("compare page:", "  ".join(f"{k} {v * 1e3:.0f} ms" for k, v in compare.items()))


def _forward(model: Predictor, x: torch.Tensor, mode) -> None:
    with mode():
        model.model(x)


def _forward_bf16(model: Predictor, x: torch.Tensor) -> None:
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        model.model(x)


def _parallel(models: list[Predictor], scan: covidnet.Scan) -> None:
    with ThreadPoolExecutor(len(models)) as pool:
        list(pool.map(lambda m: m.analyze(scan), models))


if __name__ == "__main__":
    main()
