"""CovidNet's CPU benchmarks: `python benchmarks/run.py [--only SECTION ...] [--out benchmarks/results.json]`.

Medians over repeated runs after a warm-up; every ratio is against a baseline measured in the same run:
- per backbone: ``predict`` (the probabilities alone) and ``analyze`` on one scan next to one plain forward and
  one forward+backward of the same torchvision network at the same input size, and (with the lung segmenter
  installed, which ``analyze`` then runs too) next to the segmenter's own ``segment`` plus that forward+backward;
- the Compare page's work (every backbone on one scan);
- ``covidnet predict`` throughput over 100 scans, with and without heatmaps, batched and one scan at a time;
- batched scoring (in-process, models loaded) per backbone against the model alone at the same batch size, and
  against resnet18's one-scan-at-a-time path (batch size 1), with and without heatmaps;
- cold start (process start → first analysis) and the RSS that loading every backbone adds (the app server's
  own memory is measured by benchmarks/app_memory.py);
- the "seed-style" request of typical demos (model loaded per request, one pass for the probabilities and
  another for Grad-CAM) against ours.

Uses the trained weights in weights/ (or $COVIDNET_WEIGHTS); with none, seeded random weights of the
registry's input sizes, which time the same computation. ``--only`` measures the named sections and keeps the
others' results in the output file; each section records the load average around it (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

import covidnet
from covidnet.inference.predictor import Predictor, installed_segmenter
from covidnet.io.preprocessing import build_transform
from covidnet.models.checkpoints import checkpoint_paths, default_weights_dir, save_checkpoint
from covidnet.models.metadata import read_checkpoint_metadata
from covidnet.models.registry import build_model, cam_layer, get_spec
from covidnet.provenance import recorded_path
from covidnet.scoring.pipeline import DEFAULT_BATCH_SIZE, score_blocks

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cxr"
REPEATS, WARMUP = 20, 2
SCORING_SCANS, SCORING_REPEATS = 96, 5


def medians(works: dict[str, Callable[[], object]], repeats: int = REPEATS, warmup: int = WARMUP) -> dict[str, float]:
    """Median seconds of each work, run in interleaved rounds (each work once per round), so that a noisy
    spell on this shared machine slows every variant alike and the ratios between them hold."""
    for _ in range(warmup):
        for work in works.values():
            work()
    times: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(repeats):
        for name, work in works.items():
            started = time.perf_counter()
            work()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}


def median_seconds(work: Callable[[], object], repeats: int = REPEATS, warmup: int = WARMUP) -> float:
    return medians({"work": work}, repeats, warmup)["work"]


def weights_folder() -> tuple[Path, str]:
    trained = covidnet.trained_backbones()
    if trained:
        folder = default_weights_dir()
        return folder, f"trained weights in {recorded_path(folder)}/: " + ", ".join(
            f"{name} {read_checkpoint_metadata(checkpoint_paths(name, folder)[1]).sha256[:12]}" for name in trained
        )
    folder = Path(tempfile.mkdtemp(prefix="covidnet-bench-"))
    for name in covidnet.backbones():
        torch.manual_seed(0)
        save_checkpoint(build_model(name), backbone=name, input_size=get_spec(name).input_size, out_dir=folder)
    return folder, "seeded random weights (no trained weights installed)"


def scans(count: int) -> list[Path]:
    paths = sorted((DATA / "images").rglob("*.jpg"))
    if not paths:
        sys.exit(f"benchmarks need the shared chest X-rays at {DATA}")
    step = max(1, len(paths) // count)
    return paths[::step][:count]


def predict(model: Predictor, scan: covidnet.Scan) -> dict[str, float]:
    """The calibrated probabilities alone: the prepared scan through the classifier, no gate, no heatmap."""
    with torch.inference_mode():
        logits = model.classifier.forward(model.prepare(scan).tensor.unsqueeze(0)).logits
    return model.classifier.probabilities(logits)[0]


def forward_prepared(model: Predictor, batch: torch.Tensor) -> None:
    """``Predictor.forward`` on a batch already prepared: the classifier's pass and the gate's stage statistics
    (recorded in that pass, or from the pass of the network whose gate it borrows)."""
    network = model.classifier.network
    with network.lock, torch.inference_mode(), model.gate.watching(network) as gate_statistics:
        model.classifier.forward(batch)
    gate_statistics(batch)


def per_backbone(weights: Path, scan_path: Path) -> dict:
    scan = covidnet.read_scan(scan_path)
    segmenter = installed_segmenter(weights)
    lungs = {"segment": lambda: segmenter.segment(scan.image)} if segmenter else {}
    rows = {}
    for name in covidnet.trained_backbones(weights):
        model = covidnet.load(name, weights_dir=weights)
        plain = build_model(name).eval()
        plain.load_state_dict(model.classifier.network.module.state_dict())
        x = build_transform(model.meta)(scan.image).unsqueeze(0)

        def forward(plain=plain, x=x):
            with torch.no_grad():
                plain(x)

        def forward_backward(plain=plain, x=x):
            plain.zero_grad()
            plain(x)[0, 0].backward()

        row = {"input_size": model.meta.input_size} | medians(
            {
                "forward": forward,
                "forward_backward": forward_backward,
                "predict": lambda m=model: predict(m, scan),
                "analyze": lambda m=model: m.analyze(scan),
                "seed_style_request": lambda n=name: seed_style_request(n, weights, scan_path),
                **lungs,
            }
        )
        row["predict_over_forward"] = row["predict"] / row["forward"]
        row["analyze_over_forward_backward"] = row["analyze"] / row["forward_backward"]
        if segmenter:  # analyze finds the lungs too: compare with the segmenter's and the network's own work
            own_work = row["segment"] + row["forward_backward"]
            row["analyze_over_segment_plus_forward_backward"] = row["analyze"] / own_work
        row["speedup_over_seed_style"] = row["seed_style_request"] / row["analyze"]
        rows[name] = row
    return rows


def seed_style_request(name: str, weights: Path, scan_path: Path) -> None:
    """What hobby demos do per request: rebuild and load the model, one pass for the probabilities, a
    second pass for Grad-CAM."""
    pt_path, _ = checkpoint_paths(name, weights)
    meta = covidnet.load(name, weights_dir=weights).meta
    model = build_model(name)
    model.load_state_dict(torch.load(pt_path, map_location="cpu", weights_only=True))
    model.eval()
    x = build_transform(meta)(covidnet.read_scan(scan_path).image).unsqueeze(0)
    with torch.no_grad():
        probabilities = torch.softmax(model(x), 1)
    target = [ClassifierOutputTarget(int(probabilities.argmax()))]
    with GradCAM(model, [cam_layer(model, get_spec(name))]) as cam:
        cam(input_tensor=x, targets=target)


def compare_page(weights: Path, scan_path: Path) -> dict:
    scan = covidnet.read_scan(scan_path)
    models = [covidnet.load(name, weights_dir=weights) for name in covidnet.trained_backbones(weights)]
    seconds = median_seconds(lambda: [m.analyze(scan) for m in models])
    return {"backbones": len(models), "seconds": seconds}


def cli_throughput(weights: Path, paths: list[Path]) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="covidnet-scans-"))
    for k, path in enumerate(paths):
        shutil.copy(path, folder / f"{k:03d}{path.suffix}")
    results = {}
    heatmaps = ["--heatmaps", str(folder.with_name(folder.name + "-heatmaps"))]  # outside the folder it scores
    variants = {
        "without_heatmaps": [],
        "with_heatmaps": heatmaps,
        "one_at_a_time": ["--batch-size", "1"],
        "one_at_a_time_with_heatmaps": ["--batch-size", "1", *heatmaps],
    }
    for label, extra in variants.items():
        command = [sys.executable, "-m", "covidnet", "--weights-dir", str(weights), "predict", str(folder),
                   "--backbone", "resnet18", "--json", *extra]  # fmt: skip
        seconds = median_seconds(lambda c=command: subprocess.run(c, capture_output=True, check=True), repeats=3,
                                 warmup=1)  # fmt: skip
        results[label] = {"scans": len(paths), "seconds": seconds, "scans_per_second": len(paths) / seconds}
    shutil.rmtree(folder)
    shutil.rmtree(heatmaps[1])
    return results


def scoring_throughput(weights: Path, paths: list[Path], batch_size: int = DEFAULT_BATCH_SIZE) -> dict:
    """Scans per second of batched scoring (read, find the lungs, prepare, forward, gate, rows; in-process, models
    loaded) next to the networks alone on the same scans already prepared, at the same batch size: "classifier" is
    the predictor's forward passes (its network, and the gate's stages: for densenet121 and vgg11_bn a resnet18
    pass that stops after layer3, since they share its gate), "model" that plus the lung segmenter's forward pass
    (every analysis finds the lungs), "network" the classifier's network alone. With heatmaps, next to the analysis
    alone (forward, backward, CAM, gate, lungs ready) and with every overlay PNG written. For resnet18 also batch
    size 1, the one-scan-at-a-time path of `covidnet predict` before batching."""
    items = [(str(p), p) for p in paths]
    folder = Path(tempfile.mkdtemp(prefix="covidnet-heatmaps-"))
    rows = {}
    for name in covidnet.trained_backbones(weights):
        model = covidnet.load(name, weights_dir=weights)
        scans = [covidnet.read_scan(p) for p in paths]
        segmenter = model.segmenter
        lungs = [None if segmenter is None else segmenter.segment_batch([scan.image])[0] for scan in scans]
        prepared = [model.prepare(scan, mask) for scan, mask in zip(scans, lungs, strict=True)]
        batches = torch.stack([p.tensor for p in prepared]).split(batch_size)
        lung_batches = (
            [] if segmenter is None else torch.cat([segmenter.prepare(s.image) for s in scans]).split(batch_size)
        )

        def network_only(model=model, batches=batches):
            with torch.inference_mode():
                for batch in batches:
                    model.classifier.network.module(batch)

        def classifier_only(model=model, batches=batches):
            for batch in batches:
                forward_prepared(model, batch)

        def segmenter_only(segmenter=segmenter, lung_batches=lung_batches):
            with torch.inference_mode():
                for batch in lung_batches:
                    segmenter.model(batch)

        def analysis_only(model=model, scans=scans, prepared=prepared):
            for k in range(0, len(scans), batch_size):
                model.analyze_batch(scans[k : k + batch_size], cam="gradcam", prepared=prepared[k : k + batch_size])

        def scoring(size=batch_size, model=model, heatmaps=None):
            for _ in score_blocks(items, [model], batch_size=size, heatmaps=heatmaps):
                pass

        works = {
            "network": network_only,
            "classifier": classifier_only,
            "segmenter": segmenter_only,
            "scoring": scoring,
            "analysis_with_cam": analysis_only,
            "scoring_with_heatmaps": lambda scoring=scoring: scoring(heatmaps=folder),
        }
        if name == "resnet18":
            works["one_at_a_time"] = lambda scoring=scoring: scoring(size=1)
            works["one_at_a_time_with_heatmaps"] = lambda scoring=scoring: scoring(size=1, heatmaps=folder)
        seconds = medians(works, repeats=SCORING_REPEATS, warmup=1)
        seconds["model"] = seconds["classifier"] + seconds["segmenter"]
        row = {f"{work}_scans_per_second": len(paths) / t for work, t in seconds.items()}
        row["scoring_over_model"] = seconds["model"] / seconds["scoring"]
        row["scoring_over_classifier"] = seconds["classifier"] / seconds["scoring"]
        row["heatmaps_over_analysis"] = seconds["analysis_with_cam"] / seconds["scoring_with_heatmaps"]
        if name == "resnet18":
            row["speedup_over_one_at_a_time"] = seconds["one_at_a_time"] / seconds["scoring"]
            row["heatmaps_speedup_over_one_at_a_time"] = (
                seconds["one_at_a_time_with_heatmaps"] / seconds["scoring_with_heatmaps"]
            )
        rows[name] = row
    shutil.rmtree(folder)
    return {"scans": len(paths), "batch_size": batch_size, "repeats": SCORING_REPEATS, "backbones": rows}


PROBE = """
import json, sys
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
import covidnet
rss = {"import": rss_mb()}
for name in sys.argv[3:] or covidnet.trained_backbones(sys.argv[1]):
    covidnet.load(name, weights_dir=sys.argv[1]).analyze(sys.argv[2])
    rss[name] = rss_mb()
print(json.dumps(rss))
"""

COLD = "import sys, covidnet; covidnet.load('resnet18', weights_dir=sys.argv[1]).analyze(sys.argv[2])"


def cold_start_and_memory(weights: Path, scan_path: Path) -> dict:
    def cold():
        subprocess.run([sys.executable, "-c", COLD, str(weights), str(scan_path)], check=True, capture_output=True)

    def probe(*names: str) -> dict[str, float]:
        """RSS after the imports, then after loading and running each of ``names`` (default: every backbone)."""
        return json.loads(subprocess.run([sys.executable, "-c", PROBE, str(weights), str(scan_path), *names],
                                         check=True, capture_output=True, text=True).stdout)  # fmt: skip

    rss = probe()
    steps = list(rss.values())
    return {
        "cold_start_seconds": median_seconds(cold, repeats=REPEATS, warmup=1),
        "import_rss_mb": rss["import"],
        "all_backbones_rss_mb": steps[-1],
        "rss_increase_mb": steps[-1] - steps[0],
        # what loading and running each backbone added, in registry order (the first also pays for shared parts:
        # the lung segmenter and torch's kernels)
        "rss_added_mb": {name: now - before for (name, now), before in zip(list(rss.items())[1:], steps, strict=False)},
        # each backbone alone in a fresh process (its own cost, shared parts included)
        "rss_alone_mb": {
            name: alone[name] - alone["import"] for name in rss if name != "import" for alone in [probe(name)]
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.json")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="measure these sections, keep the others")
    args = parser.parse_args()
    weights, weights_note = weights_folder()
    paths = scans(100)
    sections = {
        "per_backbone": lambda: per_backbone(weights, paths[0]),
        "compare_page": lambda: compare_page(weights, paths[0]),
        "cli_throughput": lambda: cli_throughput(weights, paths),
        "scoring": lambda: scoring_throughput(weights, scans(SCORING_SCANS)),
        "process": lambda: cold_start_and_memory(weights, paths[0]),
    }
    result = json.loads(args.out.read_text()) if args.only and args.out.exists() else {}
    result |= {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "weights": weights_note,
        "repeats": REPEATS,
    }
    loads = result.setdefault("load_average", {})  # 1-minute load average before and after each section
    for name in args.only or SECTIONS:
        before = os.getloadavg()[0]
        result[name] = sections[name]()
        loads[name] = [before, os.getloadavg()[0]]
        args.out.write_text(json.dumps(result, indent=2) + "\n")  # after each section: a later failure keeps it
    print(f"{result['machine']}; {weights_note}")
    for name in args.only or SECTIONS:
        REPORTS[name](result[name])
        print(f"  (load average {loads[name][0]:.1f} before, {loads[name][1]:.1f} after)")
    print(f"wrote {args.out}")


def report_per_backbone(rows: dict) -> None:
    print(f"medians of {REPEATS} runs (ms)")
    print(f"{'backbone':<12} {'forward':>8} {'fwd+bwd':>8} {'predict':>8} {'analyze':>8} {'pred/fwd':>9} "
          f"{'ana/f+b':>8} {'seed-style':>10} {'speed-up':>9}")  # fmt: skip
    for name, r in rows.items():
        print(f"{name:<12} {r['forward'] * 1e3:8.1f} {r['forward_backward'] * 1e3:8.1f} {r['predict'] * 1e3:8.1f} "
              f"{r['analyze'] * 1e3:8.1f} {r['predict_over_forward']:9.2f} {r['analyze_over_forward_backward']:8.2f} "
              f"{r['seed_style_request'] * 1e3:10.1f} {r['speedup_over_seed_style']:8.1f}x")  # fmt: skip


def report_scoring(s: dict) -> None:
    print(f"batched scoring, {s['scans']} scans, batch size {s['batch_size']}, medians of {s['repeats']} rounds "
          "(scans/s)")  # fmt: skip
    for name, r in s["backbones"].items():
        line = (f"{name:<12} network {r['network_scans_per_second']:6.1f}  classifier "
                f"{r['classifier_scans_per_second']:6.1f}  segmenter {r['segmenter_scans_per_second']:6.1f}  model "
                f"{r['model_scans_per_second']:6.1f}  "
                f"scoring {r['scoring_scans_per_second']:6.1f} "
                f"({r['scoring_over_model']:.2f} of model)  analysis+CAM {r['analysis_with_cam_scans_per_second']:6.1f}"
                f"  with heatmaps {r['scoring_with_heatmaps_scans_per_second']:6.1f} "
                f"({r['heatmaps_over_analysis']:.2f})")  # fmt: skip
        if "one_at_a_time_scans_per_second" in r:
            line += (f"  one at a time {r['one_at_a_time_scans_per_second']:.1f} "
                     f"({r['speedup_over_one_at_a_time']:.1f}x), with heatmaps "
                     f"{r['one_at_a_time_with_heatmaps_scans_per_second']:.1f} "
                     f"({r['heatmaps_speedup_over_one_at_a_time']:.1f}x)")  # fmt: skip
        print(line)


def report_cli(t: dict) -> None:
    print("covidnet predict, 100 scans (scans/s): " + ", ".join(
        f"{label} {v['scans_per_second']:.1f}" for label, v in t.items()))  # fmt: skip


def report_compare(c: dict) -> None:
    print(f"compare page ({c['backbones']} backbones, one scan): {c['seconds'] * 1e3:.0f} ms")


def report_process(p: dict) -> None:
    print(f"cold start: {p['cold_start_seconds']:.2f} s; RSS import {p['import_rss_mb']:.0f} MB, "
          f"+{p['rss_increase_mb']:.0f} MB with every backbone loaded and run ("
          + ", ".join(f"{name} +{mb:.0f}" for name, mb in p.get("rss_added_mb", {}).items()) + "); each alone: "
          + ", ".join(f"{name} +{mb:.0f}" for name, mb in p.get("rss_alone_mb", {}).items()))  # fmt: skip


SECTIONS = ("per_backbone", "compare_page", "cli_throughput", "scoring", "process")
REPORTS = {
    "per_backbone": report_per_backbone,
    "compare_page": report_compare,
    "cli_throughput": report_cli,
    "scoring": report_scoring,
    "process": report_process,
}


if __name__ == "__main__":
    main()
