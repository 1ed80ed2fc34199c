"""The package's layering: the library never imports Streamlit, grad-cam's heavy dependencies or Ray (scoring
imports Ray and pyarrow only inside the functions that need them), and no module imports from a layer above its own."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("streamlit", "pytorch_grad_cam", "cv2", "matplotlib", "ray")  # never imported by the package
PACKAGE = Path(__file__).resolve().parents[1] / "covidnet"
# Each folder may import from the ones listed (and from the top-level modules: classes, errors, notices).
ALLOWED = {
    "io": {"models"},
    "models": set(),
    "inference": {"io", "models", "lungs"},
    "scoring": {"io", "models", "lungs", "inference", "assessment"},  # the ensemble threshold the calibration chose
    "lungs": {"io", "models"},
    "data": {"io", "models"},
    "assessment": {"io", "models", "inference", "lungs", "data"},
    "training": {"io", "models", "inference", "lungs", "data", "assessment"},
    "experiments": {"io", "models", "inference", "lungs", "data", "assessment", "training"},
    "cli": {"io", "models", "inference", "scoring", "lungs", "data", "assessment", "training", "experiments"},
}


def test_importing_every_covidnet_module_imports_no_streamlit_no_grad_cam_and_no_ray():
    code = (
        "import importlib, pkgutil, sys, covidnet\n"
        "for m in pkgutil.walk_packages(covidnet.__path__, 'covidnet.'):\n"
        "    if m.name != 'covidnet.__main__': importlib.import_module(m.name)\n"
        f"print(sorted(n for n in {HEAVY} if n in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_importing_covidnet_and_its_scoring_commands_imports_no_pyarrow_or_pandas():
    code = (
        "import sys, covidnet, covidnet.cli.predict, covidnet.scoring.ray_engine\n"
        "print(sorted(n for n in ('ray', 'pyarrow', 'pandas') if n in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def _imported_layers(path: Path) -> set[str]:
    layers = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
        for name in names:
            parts = name.split(".")
            if parts[0] == "covidnet" and len(parts) > 2:
                layers.add(parts[1])
    return layers


def test_no_two_layers_may_import_each_other():
    two_way = sorted((a, b) for a in ALLOWED for b in ALLOWED[a] if a < b and a in ALLOWED.get(b, set()))
    assert not two_way, f"layers allowed to import each other: {two_way}"


MAX_LINES = 300


def test_every_module_of_the_package_has_at_most_300_lines():
    lines = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    long = {name: n for name, n in lines.items() if n > MAX_LINES}
    assert not long, f"split these modules (one job each): {long}"


def test_every_folder_of_the_package_has_its_layer():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(ALLOWED)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_from_the_layers_below_it(layer):
    modules = sorted((PACKAGE / layer).glob("*.py"))
    assert modules, f"covidnet/{layer} is missing"
    for module in modules:
        wrong = _imported_layers(module) - ALLOWED[layer] - {layer}
        assert not wrong, f"{module.relative_to(PACKAGE)} imports from covidnet.{', covidnet.'.join(sorted(wrong))}"
