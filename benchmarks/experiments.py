"""What was tried to make analysis fast on a 2-core CPU: `python benchmarks/experiments.py`.

Each variant is timed on the same scan in the same run (medians of 20 interleaved rounds after warm-up),
against the shipped configuration (channels_last weights): the default contiguous layout, thread counts, bf16
autocast, inference_mode versus no_grad, and running the Compare page's backbones in parallel threads instead
of one after another. bf16 is also judged on accuracy: macro AUC and changed predictions on the validation
split, against float32.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from run import DATA, ROOT, median_seconds, medians, scans, weights_folder

import covidnet
from covidnet.assessment.metrics import macro_auc
from covidnet.classes import CLASSES
from covidnet.data.records import read_metadata
from covidnet.data.splits import split_records
from covidnet.inference.predictor import Predictor, installed_segmenter
from covidnet.models.checkpoints import load_checkpoint

OUT = Path(__file__).parent / "experiments.json"


def fresh(name: str, weights: Path) -> Predictor:
    """A predictor with a network of its own (not the one ``load`` shares), no gate, and the lung segmenter."""
    model, meta = load_checkpoint(name, weights)
    return Predictor.of(model, meta, segmenter=installed_segmenter(weights))


def main() -> None:
    weights, note = weights_folder()
    scan = covidnet.read_scan(scans(1)[0])
    rows: dict[str, dict[str, float]] = {}
    for name in covidnet.trained_backbones(weights):
        baseline = fresh(name, weights)
        x = baseline.prepare(scan).tensor.unsqueeze(0)
        contiguous = fresh(name, weights)
        contiguous.classifier.network.module.to(memory_format=torch.contiguous_format)
        row = medians(
            {
                "analyze": lambda m=baseline: m.analyze(scan),
                "analyze_contiguous": lambda m=contiguous: m.analyze(scan),
                "forward_inference_mode": lambda m=baseline, x=x: _forward(m, x, torch.inference_mode),
                "forward_no_grad": lambda m=baseline, x=x: _forward(m, x, torch.no_grad),
                "forward_bf16_autocast": lambda m=baseline, x=x: _forward_bf16(m, x),
            }
        )
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        row["analyze_1_thread"] = median_seconds(lambda m=baseline: m.analyze(scan))
        torch.set_num_threads(threads)
        rows[name] = row
    models = [fresh(n, weights) for n in covidnet.trained_backbones(weights)]
    compare = medians(
        {"sequential": lambda: [m.analyze(scan) for m in models], "parallel_threads": lambda: _parallel(models, scan)}
    )
    result = {
        "weights": note,
        "threads": torch.get_num_threads(),
        "per_backbone": rows,
        "compare_page": compare,
        "bf16_on_validation": bf16_accuracy(models),
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    for name, row in rows.items():
        print(name, "  ".join(f"{k} {v * 1e3:.1f} ms" for k, v in row.items()))
    print("compare page:", "  ".join(f"{k} {v * 1e3:.0f} ms" for k, v in compare.items()))
    for name, row in result["bf16_on_validation"].items():
        print(name, "validation:", "  ".join(f"{k} {v:.4f}" for k, v in row.items()))


def _forward(model: Predictor, x: torch.Tensor, mode) -> None:
    with mode():
        model.classifier.network.module(x)


def _forward_bf16(model: Predictor, x: torch.Tensor) -> None:
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        model.classifier.network.module(x)


def bf16_accuracy(models: list[Predictor], batch: int = 64) -> dict[str, dict[str, float]]:
    """Macro AUC on the validation split with float32 and with bf16 autocast, and the share of changed predictions."""
    records = split_records(read_metadata(DATA / "metadata.csv"), ROOT / "weights" / "split.csv")["val"]
    labels = np.array([CLASSES.index(r.label) for r in records])
    images = [covidnet.read_scan(r.path) for r in records]
    rows = {}
    for model in models:
        inputs = [
            torch.stack([model.prepare(s).tensor for s in images[i : i + batch]]) for i in range(0, len(images), batch)
        ]
        logits = {}
        for precision, autocast in (("float32", False), ("bf16", True)):
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                logits[precision] = torch.cat([model.classifier.network.module(x).float() for x in inputs])
        probabilities = {k: torch.softmax(v, 1).numpy() for k, v in logits.items()}
        rows[model.backbone] = {
            "macro_auc_float32": macro_auc(probabilities["float32"], labels),
            "macro_auc_bf16": macro_auc(probabilities["bf16"], labels),
            "predictions_changed": float((logits["float32"].argmax(1) != logits["bf16"].argmax(1)).float().mean()),
            "max_probability_change": float(np.abs(probabilities["float32"] - probabilities["bf16"]).max()),
        }
    return rows


def _parallel(models: list[Predictor], scan: covidnet.Scan) -> None:
    with ThreadPoolExecutor(len(models)) as pool:
        list(pool.map(lambda m: m.analyze(scan), models))


if __name__ == "__main__":
    main()
