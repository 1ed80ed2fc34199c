"""Record the shipped models' outputs on the bundled samples (run once before a refactor).

    python tests/golden/record.py        # writes tests/golden/outputs.json

``tests/test_golden.py`` compares every later build with these values: probabilities to 1e-6,
heatmap grids to 1e-5, warnings and the CLI's JSON rows exactly.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import covidnet
from covidnet.io.samples import samples

HERE = Path(__file__).parent
CAMS = ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam")


def made_up_scans() -> dict[str, bytes]:
    """Two seeded images that are not chest X-rays (the gate's verdict on them is recorded too)."""
    rng = np.random.default_rng(0)
    images = {
        "colour_noise.png": Image.fromarray(rng.integers(0, 256, (200, 240, 3), dtype=np.uint8), "RGB"),
        "grey_stripes.png": Image.fromarray((np.indices((256, 256))[1] % 32 * 8).astype(np.uint8), "L"),
    }
    encoded = {}
    for name, image in images.items():
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        encoded[name] = buffer.getvalue()
    return encoded


def inputs() -> dict[str, bytes]:
    """The bundled samples and the made-up images, by file name."""
    return {**{s.file: s.path.read_bytes() for s in samples()}, **made_up_scans()}


def outputs() -> dict:
    """Per input and backbone: probabilities, prediction, warnings, and the heatmap grid of each CAM method."""
    recorded: dict = {"analyses": {}, "cli": None}
    for file, data in inputs().items():
        scan = covidnet.read_scan(data)
        for name in covidnet.trained_backbones():
            model = covidnet.load(name)
            entry: dict = {"grids": {}}
            for cam in CAMS:
                analysis = model.analyze(scan, cam=cam)
                entry["probabilities"] = analysis.probabilities
                entry["prediction"] = analysis.prediction
                entry["warnings"] = [{"code": w.code.value, "message": w.message} for w in analysis.warnings]
                entry["grids"][cam] = np.asarray(analysis.grid, dtype=float).round(7).tolist()
                entry["heatmap_sum"] = {**entry.get("heatmap_sum", {}), cam: float(analysis.heatmap.sum())}
            covid = model.analyze(scan, cam="gradcam", target="covid")
            entry["grid_covid_target"] = np.asarray(covid.grid, dtype=float).round(7).tolist()
            recorded["analyses"][f"{file}|{name}"] = entry
    return recorded


def cli(folder: Path, *flags: str) -> subprocess.CompletedProcess:
    """``covidnet predict . --backbone all FLAGS`` run in ``folder`` (so the rows name relative paths)."""
    return subprocess.run(
        [sys.executable, "-m", "covidnet", "predict", ".", "--backbone", "all", *flags],
        capture_output=True,
        text=True,
        check=False,
        cwd=folder,
    )


if __name__ == "__main__":
    result = outputs()
    folder = samples()[0].path.parent
    rows, text = cli(folder, "--json"), cli(folder)
    result["cli"] = {
        "returncode": rows.returncode,
        "rows": [json.loads(line) for line in rows.stdout.splitlines()],
        "text": text.stdout.splitlines(),
    }
    (HERE / "outputs.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"recorded {len(result['analyses'])} analyses and {len(result['cli']['rows'])} CLI rows")
