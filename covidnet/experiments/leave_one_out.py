"""Leave-one-source-out: for each data source that holds two or more labels, train one backbone without it (on a
short schedule) and measure that model on every scan of the source, which it neither trained on nor was selected
on, next to its own validation and internal test figures without that source.

The gap between the two is what a source costs a model that never saw it: the number the internal test cannot
give. Sources are data sets (``Record.dataset``), so copies of one data set in several repositories go together.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from covidnet.assessment.evaluate import evaluate
from covidnet.assessment.leave_one_out_report import HeldOutSource, LeaveOneOutReport
from covidnet.assessment.metric_records import Metrics, SourceMetrics
from covidnet.data.records import Record, read_metadata
from covidnet.data.sources import matches, without
from covidnet.data.splits import split_records
from covidnet.errors import TrainingSetupError
from covidnet.lungs.checkpoint import lungs_paths
from covidnet.models.checkpoints import default_weights_dir
from covidnet.training.train import TrainConfig, train

POOL_SPLITS = ("train", "val", "test")  # the external source is never trained on anyway


def multi_label_sources(records: list[Record]) -> list[str]:
    """The data sets among ``records`` that hold two or more labels (a one-label source has no AUC of its own)."""
    labels: dict[str, set[str]] = defaultdict(set)
    for record in records:
        labels[record.dataset].add(record.label)
    return sorted(name for name, held in labels.items() if len(held) >= 2)


def leave_one_source_out(
    template: TrainConfig, folder: Path, *, sources: list[str] | None = None, command: str = ""
) -> LeaveOneOutReport:
    """Train ``template`` once per source without it (checkpoints in ``folder/<source>``) and measure each model;
    ``sources`` default to every data set of the split's train, val and test parts with two or more labels."""
    parts = split_records(read_metadata(Path(template.data) / "metadata.csv"), template.split_file)
    pool = [r for split in POOL_SPLITS for r in parts.get(split, [])]
    sources = sources or multi_label_sources(pool)
    if not sources:
        raise TrainingSetupError("no data source with two or more labels to leave out; check --data and --sources")
    rounds = {}
    for source in sources:
        out = Path(folder) / source
        config = replace(
            template, exclude=(*template.exclude, source), out=out, state_dir=out / "runs", history=[], resume=False
        )
        meta = train(config, command=command)
        for path in lungs_paths(default_weights_dir()):  # the segmenter the crops and lung checks need
            shutil.copy(path, out)

        def measure(records: list[Record], data: str, out=out) -> Metrics:
            report = evaluate(records, backbones=[template.backbone], data=data, weights_dir=out, shortcuts=False)
            return report.backbones[template.backbone].metrics

        left_out = measure([r for r in pool if matches(r, [source])], f"every scan of {source}")
        rounds[source] = HeldOutSource(
            trained_on=meta.training.sources,
            validation_macro_auc=measure(without(parts["val"], [source]), "val").macro_auc.value,
            internal_test_macro_auc=measure(without(parts["test"], [source]), "test").macro_auc.value,
            left_out=_source_metrics(left_out),
            seconds=meta.training.seconds,
            train_images=meta.training.train_images,
        )
    settings = {k: v for k, v in meta.training.settings.items() if k not in ("out", "state_dir", "exclude")}
    return LeaveOneOutReport(template.backbone, settings, rounds, command)


def _source_metrics(metrics: Metrics) -> SourceMetrics:
    return SourceMetrics(
        n=metrics.n,
        class_counts=metrics.class_counts,
        accuracy=metrics.accuracy.value,
        macro_auc=metrics.macro_auc.value,
        sensitivity={name: c.sensitivity.value for name, c in metrics.per_class.items()},
    )
