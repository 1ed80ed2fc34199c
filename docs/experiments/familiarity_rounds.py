"""The unfamiliar-film signal on the leave-one-source-out rounds of any recipe, tabulated: the measurement of
``covidnet familiarity-report --rounds`` (``covidnet.experiments.familiarity_rounds``), for recipes that shipped nothing
too. Answers count as given at the shipped model's "uncertain" threshold for that backbone (``weights/``).

    python docs/experiments/familiarity_rounds.py RECIPE_FOLDER [...] --out OUT.json

Each RECIPE_FOLDER is a ``covidnet leave-one-out --folder``, with its rounds' checkpoints; each round's signal is
written into its folder, as ``fit-familiarity`` would.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from covidnet.assessment.card_sections import rounds_table
from covidnet.data.records import read_metadata
from covidnet.data.splits import split_records
from covidnet.experiments.familiarity_rounds import measure_round, round_folders
from covidnet.models.checkpoints import checkpoint_paths, default_weights_dir
from covidnet.models.metadata import read_checkpoint_metadata


def _backbone(recipe: Path) -> str:
    (checkpoint,) = {p.stem for p in recipe.glob("*/*.pt") if p.stem != "lungs" and p.with_suffix(".json").exists()}
    return checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="+", type=Path, help="leave-one-source-out folders, one per recipe")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/cxr"))
    parser.add_argument("--split-file", type=Path, default=Path("weights/split.csv"))
    parser.add_argument("--cache", type=Path, default=Path("runs/familiarity"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    parts = split_records(read_metadata(args.data / "metadata.csv"), args.split_file)
    rows = []
    for recipe in args.recipes:
        backbone = _backbone(recipe)
        shipped = read_checkpoint_metadata(checkpoint_paths(backbone, default_weights_dir())[1])
        answered_at = shipped.thresholds.uncertain_below
        for folder in round_folders(recipe, backbone):
            rows.append((recipe.name, measure_round(folder, backbone, parts, args.split_file, args.cache, answered_at)))
    args.out.write_text(json.dumps([{"recipe": name, **asdict(r)} for name, r in rows], indent=1) + "\n")
    print(rounds_table(rows, label="recipe"))


if __name__ == "__main__":
    main()
