"""Training one backbone: the split's train part, early stopping on validation macro AUC,
temperature scaling on validation, and a checkpoint with its metadata.

Images go through ``read_scan`` and ``build_transform`` like everywhere else; the augmentations of
``covidnet.training.augmentation`` run in front. Against source shortcuts (``covidnet.data.sources``,
``covidnet.training.adversary``): batches drawn balanced by (source, label), whole sources held out of training
into validation (so the epoch and temperature are chosen on sources never trained on), and a source-adversarial
head behind a gradient-reversal layer.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from covidnet.assessment.metrics import expected_calibration_error, macro_auc
from covidnet.classes import CLASSES
from covidnet.data.records import Record, read_metadata
from covidnet.data.sources import sample_weights, source_index, training_films
from covidnet.data.splits import split_records
from covidnet.errors import TrainingSetupError
from covidnet.io.preprocessing import build_transform
from covidnet.lungs.segment import load_segmenter
from covidnet.models.checkpoints import count_parameters, load_checkpoint, save_checkpoint
from covidnet.models.metadata import CheckpointMetadata, LungCrop
from covidnet.models.pretrained import imagenet_start
from covidnet.models.registry import build_model, get_spec, head
from covidnet.models.training_state import load_training_state, restore_training_state, save_training_state
from covidnet.provenance import git_commit, seed_everything
from covidnet.training.adversary import HeadInput, SourceAdversary, ramp
from covidnet.training.augmentation import augmentation
from covidnet.training.calibration import fit_temperature
from covidnet.training.lung_boxes import lung_boxes
from covidnet.training.scan_dataset import ScanDataset
from covidnet.training.summary import training_summary


@dataclass
class TrainConfig:
    """Everything that determines a training run (recorded on the metadata)."""

    backbone: str
    data: Path
    split_file: Path
    out: Path
    epochs: int = 12
    init: str = "scratch"  # "scratch", "imagenet", or the folder of a covidnet checkpoint to start from
    device: str = "cpu"
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    input_size: int | None = None  # default: the registry's
    patience: int = 4
    workers: int = 1
    resume: bool = False
    state_dir: Path = Path("runs")
    limit: int | None = None  # use only every n-th image (quick experiments and tests)
    crop: str = "none"  # "lungs": train (and always predict) on the lungs' box, found by the installed segmenter
    crop_margin: float = 0.1  # the lungs' box widened by this share of its width and height on every side
    intensity: str = "none"  # "equalize": histogram equalisation, a recorded preprocessing step
    augment: str = "xray"  # "source-cues" adds resolution, blur/sharpness, noise and border/corner changes
    balance: str = "label"  # "source-label": every label equally often, and every source within a label
    adversary: float = 0.0  # strength of the source-adversarial head's reversed gradient (0: no adversary)
    holdout: tuple[str, ...] = ()  # sources moved from training into validation (data set or repository names)
    exclude: tuple[str, ...] = ()  # sources left out of training and validation (leave-one-source-out)
    history: list[dict] = field(default_factory=list, repr=False)


def train(config: TrainConfig, *, command: str = "") -> CheckpointMetadata:
    """Train ``config.backbone`` and write ``<backbone>.pt`` and its metadata into ``config.out``."""
    started, commit = time.time(), git_commit()  # the code that trains, not the code at the end
    seed_everything(config.seed)
    spec = get_spec(config.backbone)
    input_size = config.input_size or spec.input_size
    parts = split_records(read_metadata(Path(config.data) / "metadata.csv"), config.split_file)
    train_records, val_records = training_films(
        parts, exclude=config.exclude, holdout=config.holdout, limit=config.limit
    )
    _check_not_empty(config, train=train_records, val=val_records)
    device = torch.device(config.device)

    model, start = _initial_model(config)
    pending = CheckpointMetadata(
        backbone=spec.name,
        architecture=spec.builder,
        input_size=input_size,
        sha256="",
        size_bytes=0,
        parameters=count_parameters(model),
        crop=_crop(config),
        intensity=config.intensity,
        **start,
    )
    train_boxes, val_boxes = _lung_boxes(config, train_records), _lung_boxes(config, val_records)
    shuffle_rng = torch.Generator().manual_seed(config.seed)
    sources = source_index(train_records)
    sampler = torch.utils.data.WeightedRandomSampler(
        sample_weights(train_records, config.balance), len(train_records), generator=shuffle_rng
    )
    transform = build_transform(pending, augment=augmentation(config.augment))
    loader = DataLoader(
        ScanDataset(train_records, transform, lung_boxes=train_boxes, sources=sources),
        batch_size=config.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
        generator=shuffle_rng,
    )
    val_loader = DataLoader(ScanDataset(val_records, build_transform(pending), lung_boxes=val_boxes), batch_size=64)
    model = model.to(device, memory_format=torch.channels_last)
    loss_fn = nn.CrossEntropyLoss()  # the sampler balances the labels
    adversary = SourceAdversary(head(model, spec).in_features, len(sources)).to(device) if config.adversary else None
    head_input = HeadInput(head(model, spec)) if adversary is not None else None
    parameters = [*model.parameters(), *(adversary.parameters() if adversary is not None else [])]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=steps, pct_start=0.2)
    state_path = Path(config.state_dir) / f"{spec.name}.state.pt"
    first_epoch, best = 0, {"auc": -1.0, "epoch": -1, "state": None}
    if config.resume and state_path.exists():
        first_epoch, best, config.history, seconds_before = _restore(
            state_path, model, adversary, optimizer, scheduler, shuffle_rng
        )
        started -= seconds_before  # a resumed run reports its whole training time

    for epoch in range(first_epoch, config.epochs):
        model.train()
        losses, source_hits = [], []
        for step, (x, y, s) in enumerate(
            tqdm(loader, desc=f"{spec.name} epoch {epoch + 1}/{config.epochs}", unit="batch")
        ):
            x, y, s = x.to(device, memory_format=torch.channels_last), y.to(device), s.to(device)
            loss = loss_fn(model(x), y)
            if adversary is not None:
                strength = ramp((epoch * len(loader) + step) / steps, config.adversary)
                source_logits = adversary(head_input.features, y, strength)
                loss = loss + loss_fn(source_logits, s)
                source_hits.append((source_logits.argmax(1) == s).float().mean().item())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        logits, labels = collect_logits(model, val_loader, device)
        auc = macro_auc(torch.softmax(logits, 1).numpy(), labels.numpy())
        entry = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_macro_auc": auc}
        if source_hits:
            entry["adversary_source_accuracy"] = float(np.mean(source_hits))
        config.history.append(entry)
        print(f"{spec.name} epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in entry.items() if k != "epoch"),
              flush=True)  # fmt: skip
        if auc > best["auc"]:
            best = {"auc": auc, "epoch": epoch + 1, "state": copy.deepcopy(model.state_dict())}
        _save_state(state_path, epoch + 1, best, config.history, model, adversary, optimizer, scheduler, shuffle_rng,
                    seconds=time.time() - started)  # fmt: skip
        if epoch + 1 - best["epoch"] >= config.patience:
            print(f"{spec.name}: no improvement for {config.patience} epochs, stopping", flush=True)
            break

    if head_input is not None:
        head_input.close()
    model.load_state_dict(best["state"])
    logits, labels = collect_logits(model, val_loader, device)
    temperature = fit_temperature(logits, labels)
    before = torch.softmax(logits, 1).numpy()
    after = torch.softmax(logits / temperature, 1).numpy()
    validation = {
        "n": len(labels),
        "macro_auc": macro_auc(after, labels.numpy()),
        "accuracy": float((after.argmax(1) == labels.numpy()).mean()),
        "ece_before_temperature": expected_calibration_error(before, labels.numpy()),
        "ece_after_temperature": expected_calibration_error(after, labels.numpy()),
    }
    return save_checkpoint(
        model.to("cpu", memory_format=torch.contiguous_format).eval(),
        backbone=spec.name,
        input_size=input_size,
        out_dir=config.out,
        init=pending.init,
        pretrained=pending.pretrained,
        normalisation=pending.normalisation,
        crop=pending.crop,
        intensity=pending.intensity,
        temperature=temperature,
        training=training_summary(config, train_records, val_records, best["epoch"], time.time() - started),
        metrics={"validation": validation},
        command=command,
        commit=commit,
    )


def collect_logits(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels over a loader, in order."""
    model.eval()
    outputs, labels = [], []
    with torch.inference_mode():
        for x, y, *_ in loader:
            outputs.append(model(x.to(device, memory_format=torch.channels_last)).float().cpu())
            labels.append(y)
    return torch.cat(outputs), torch.cat(labels)


def _crop(config: TrainConfig) -> LungCrop | None:
    """The metadata's ``crop`` record for ``config`` (None without a crop)."""
    if config.crop == "none":
        return None
    if config.crop != "lungs":
        raise TrainingSetupError(f"unknown crop {config.crop!r}; choose none or lungs")
    return LungCrop(margin=config.crop_margin, segmenter_sha256=load_segmenter().sha256)


def _check_not_empty(config: TrainConfig, **parts: list[Record]) -> None:
    """Refuse data that leaves a split without images, saying which options select them."""
    for name, records in parts.items():
        if not records:
            raise TrainingSetupError(
                f"No {name} images: {Path(config.data) / 'metadata.csv'} with the split file {config.split_file} "
                f"leaves none in the {name} split (after --holdout, the excluded sources and --limit); check --data "
                "and --split-file."
            )


def _lung_boxes(config: TrainConfig, records: list[Record]) -> list | None:
    """The records' lung boxes when training on lung crops (cached in the state folder), else None."""
    return lung_boxes(records, load_segmenter(), config.state_dir) if config.crop == "lungs" else None


def _initial_model(config: TrainConfig) -> tuple[nn.Module, dict]:
    """The network training starts from, and the metadata fields its start fixes: the input normalisation and
    the ImageNet provenance (carried over from a checkpoint that training warm-starts from)."""
    if config.init == "scratch":
        return build_model(config.backbone, init="scratch"), {"init": "scratch"}
    if config.init == "imagenet":
        spec = get_spec(config.backbone)
        start = imagenet_start(spec)
        spec.reset_head(start.model, len(CLASSES))
        imagenet = {"init": "imagenet", "normalisation": start.normalisation, "pretrained": start.record}
        return start.model.train(), imagenet
    model, meta = load_checkpoint(config.backbone, Path(config.init))
    start = {"init": f"checkpoint:{config.backbone}.pt sha256 {meta.sha256}"}  # a warm start names the exact weights
    return model.train(), {**start, "normalisation": meta.normalisation, "pretrained": meta.pretrained}


def _save_state(
    path: Path, epoch: int, best: dict, history: list, model, adversary, optimizer, scheduler, shuffle_rng, *,
    seconds: float,
) -> None:  # fmt: skip
    """Everything a resumed run needs to continue exactly where this one stopped, random states included, and the
    seconds it has trained so far."""
    entries = {
        "epoch": epoch,
        "best_auc": best["auc"],
        "best_epoch": best["epoch"],
        "best_state": best["state"],
        "history": history,
        "seconds": seconds,
        "adversary": adversary.state_dict() if adversary is not None else {},
        "scheduler": scheduler.state_dict(),
    }
    save_training_state(path, entries, model=model, optimizer=optimizer, rng=shuffle_rng)


def _restore(path: Path, model, adversary, optimizer, scheduler, shuffle_rng) -> tuple[int, dict, list, float]:
    state = load_training_state(path)
    restore_training_state(state, model=model, optimizer=optimizer, rng=shuffle_rng)
    if adversary is not None:
        adversary.load_state_dict(state["adversary"])
    scheduler.load_state_dict(state["scheduler"])
    print(f"resuming after epoch {state['epoch']} (best macro AUC {state['best_auc']:.4f})", flush=True)
    best = {"auc": state["best_auc"], "epoch": state["best_epoch"], "state": state["best_state"]}
    return state["epoch"], best, state["history"], state.get("seconds", 0.0)  # states saved before it was recorded
