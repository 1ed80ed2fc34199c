"""Training throughput on this CPU: `python benchmarks/training_speed.py [--sizes 128 160 224]`.

For each backbone and input size, images per second of one optimiser step (AdamW, batch 32, forward, loss,
backward, step) with and without channels_last, median of 5 steps after 2 warm-up steps. This is what chose
the 128-pixel input and channels_last for training (see weights/README.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import covidnet
from covidnet.models.registry import build_model

BATCH, STEPS, WARMUP = 32, 5, 2


def images_per_second(name: str, size: int, channels_last: bool) -> float:
    torch.manual_seed(0)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(name).to(memory_format=memory_format).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(BATCH, 3, size, size).to(memory_format=memory_format)
    y = torch.randint(0, 3, (BATCH,))
    times = []
    for step in range(WARMUP + STEPS):
        started = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        if step >= WARMUP:
            times.append(time.perf_counter() - started)
    return BATCH / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 160])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "training_speed.json")
    args = parser.parse_args()
    rows = []
    print(f"{'backbone':<12} {'size':>5} {'img/s':>7} {'img/s channels_last':>20}  ({torch.get_num_threads()} threads)")
    for name in covidnet.backbones():
        for size in args.sizes:
            plain, last = images_per_second(name, size, False), images_per_second(name, size, True)
            rows.append({"backbone": name, "size": size, "images_per_second": plain, "channels_last": last})
            print(f"{name:<12} {size:>5} {plain:7.1f} {last:20.1f}", flush=True)
    args.out.write_text(json.dumps({"threads": torch.get_num_threads(), "batch": BATCH, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
