"""One trainer for every model: one fold at a time, early stopping on the fold's GAP@20.

Deterministic on CPU under a seed: data order, dropout and mixup draw from generators
seeded by (seed, epoch), so a fold resumed from its last checkpoint continues exactly
as an uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from yt8mkit.baselines import frequency_prior
from yt8mkit.data.loader import Batch
from yt8mkit.data.store import Store
from yt8mkit.metrics import GapAccumulator
from yt8mkit.models import create_model, init_output_bias
from yt8mkit.rundir import write_json
from yt8mkit.train.batches import TargetFn, batch_stream
from yt8mkit.train.checkpoints import load_checkpoint, save_checkpoint
from yt8mkit.train.config import TrainConfig
from yt8mkit.train.curves import CurveWriter
from yt8mkit.train.losses import build_loss
from yt8mkit.train.mixup import mixup

Progress = Callable[[str, dict[str, float]], None]
# Builds the network to train when it is not a registry model (distillation's final model).
ModelFactory = Callable[[], nn.Module]


@dataclass
class FoldResult:
    best_epoch: int
    best_gap: float
    best_bce: float
    epochs_run: int
    seconds: float


def resolve_device(config: TrainConfig) -> torch.device:
    if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def build_model(
    config: TrainConfig, store: Store, factory: ModelFactory | None = None
) -> nn.Module:
    if factory is not None:
        return factory()
    return create_model(config.model.name, store.num_classes, store.dims, config.model.params)


def _optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    spec = config.optim
    cls = torch.optim.AdamW if spec.name == "adamw" else torch.optim.Adam
    params = list(model.parameters())
    # One fused pass over each parameter instead of a dozen elementwise ones: on the CPU
    # the update of a 50M-parameter model otherwise takes about half of a training step.
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32 for p in params)
    return cls(params, lr=spec.lr, weight_decay=spec.weight_decay, fused=fused)


def _schedule(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    spec = config.optim
    total = max(1, steps_per_epoch * config.epochs)

    def factor(step: int) -> float:
        if step < spec.warmup_steps:
            return (step + 1) / spec.warmup_steps
        if spec.schedule == "constant":
            return 1.0
        if spec.schedule == "step":
            epoch = step // max(1, steps_per_epoch)
            return spec.step_gamma ** (epoch // spec.step_every_epochs)
        progress = min(1.0, (step - spec.warmup_steps) / max(1, total - spec.warmup_steps))
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return spec.min_lr_ratio + (1 - spec.min_lr_ratio) * cosine

    return factor


def _to(batch: Batch, device: torch.device) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    inputs = {k: v.to(device, non_blocking=True) for k, v in batch.inputs.items()}
    targets = batch.targets.to(device) if batch.targets is not None else None
    return inputs, targets


def _autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


@torch.no_grad()
def predict_batches(
    model: nn.Module, config: TrainConfig, store: Store, rows: np.ndarray, device: torch.device
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rows, float32 probabilities) batch by batch, in the order of ``rows``."""
    model.eval()
    for batch in batch_stream(config, store, rows, training=False):
        inputs, _ = _to(batch, device)
        with _autocast(device, config.amp):
            logits = model(inputs)
        yield batch.rows, torch.sigmoid(logits.float()).cpu().numpy()


def evaluate(
    model: nn.Module, store: Store, rows: np.ndarray, config: TrainConfig, device: torch.device
) -> tuple[float, float]:
    """(GAP@20, mean BCE per class) on the given rows; dense only one batch at a time."""
    accumulator = GapAccumulator(k=20)
    bce_sum = 0.0
    for batch_rows, probs in predict_batches(model, config, store, rows, device):
        labels = store.labels_dense(batch_rows)
        accumulator.add_dense(probs, labels)
        clipped = np.clip(probs, 1e-7, 1 - 1e-7)
        bce_sum += float(-(labels * np.log(clipped) + (1 - labels) * np.log1p(-clipped)).sum())
    return accumulator.gap(), bce_sum / (len(rows) * store.num_classes)


def _mix(
    config: TrainConfig, inputs: dict[str, torch.Tensor], targets: torch.Tensor,
    generator: torch.Generator,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Mixup; a frame mask is mixed as 0/1 floats so that the mixed video's real frames
    are those of either partner (a padded frame mixed with a real one is real)."""
    mask = inputs.get("frame_mask")
    if mask is not None:
        inputs = {**inputs, "frame_mask": mask.float()}
    mixed, mixed_targets = mixup(inputs, targets, config.mixup_alpha, generator,
                                 per_sample=config.mixup_per_sample)
    if mask is not None:
        mixed["frame_mask"] = mixed["frame_mask"] > 0
    return mixed, mixed_targets


def _save(path: Path, state: dict) -> None:
    save_checkpoint(path, state)


def _weight_average(config: TrainConfig, model: nn.Module) -> AveragedModel | None:
    if config.ema_decay is None:
        return None
    decay = config.ema_decay

    @torch.no_grad()
    def update(averaged: list[torch.Tensor] | tuple[torch.Tensor, ...],
               current: list[torch.Tensor] | tuple[torch.Tensor, ...],
               num_averaged: torch.Tensor | int) -> None:
        # The decay warms up (as timm's EMA does): the first updates would otherwise keep
        # the random initial weights in the average for hundreds of steps.
        n = float(num_averaged)
        torch._foreach_lerp_(averaged, current, 1.0 - min(decay, (1.0 + n) / (10.0 + n)))

    # Buffers (BatchNorm statistics) are not averaged but copied (``_sync_buffers``):
    # they are running averages already, and averaging them again from their initial
    # values (variance 1 against about 1e-3 for L2-normalised inputs) lags so far
    # behind that the averaged network scored GAP 0.59 where the raw one scored 0.70.
    return AveragedModel(model, multi_avg_fn=update, use_buffers=False)


def _sync_buffers(average: AveragedModel, model: nn.Module) -> None:
    with torch.no_grad():
        for mine, theirs in zip(average.module.buffers(), model.buffers()):
            mine.copy_(theirs)


def set_process_flags(config: TrainConfig) -> None:
    """Process-wide torch settings a config asks for: its thread count, and whether
    denormal floats are flushed to zero (see TrainConfig.flush_denormal)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.set_flush_denormal(config.flush_denormal)


@dataclass
class FoldState:
    """Everything one fold's training carries from epoch to epoch."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    average: AveragedModel | None
    loss_fn: nn.Module
    steps_per_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] = field(
        default_factory=lambda: {"gap": -1.0, "bce": math.inf, "epoch": -1})
    start_epoch: int = 0

    @property
    def scored(self) -> nn.Module:
        """What is validated, saved as best and predicted with: the averaged weights if
        any."""
        return self.model if self.average is None else self.average.module


def setup_fold(
    config: TrainConfig, store: Store, train_rows: np.ndarray, out_dir: Path,
    device: torch.device, model_factory: ModelFactory | None = None,
) -> FoldState:
    """The model (seeded, its output bias at the label prior), optimiser, schedule and
    weight average of a fold; resumed from ``out_dir/last.pt`` when present."""
    torch.manual_seed(config.seed)
    model = build_model(config, store, model_factory).to(device)
    if config.init_bias_from_frequencies:
        init_output_bias(model, frequency_prior(store, train_rows))
    optimizer = _optimizer(config, model)
    average = _weight_average(config, model)
    steps_per_epoch = max(1, len(train_rows) // config.batch_size)
    state = FoldState(
        model=model, optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                    _schedule(config, steps_per_epoch)),
        scaler=torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and config.amp),
        average=average, loss_fn=build_loss(config.loss), steps_per_epoch=steps_per_epoch)
    last_path = out_dir / "last.pt"
    if last_path.is_file():
        saved = load_checkpoint(last_path, device)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state.scheduler.load_state_dict(saved["scheduler"])
        if average is not None:
            average.load_state_dict(saved["average"])
        state.history, state.best = saved["history"], saved["best"]
        state.start_epoch = saved["epoch"] + 1
    return state


def train_one_epoch(
    state: FoldState, config: TrainConfig, store: Store, train_rows: np.ndarray, epoch: int,
    device: torch.device, targets: TargetFn | None = None, progress: Progress | None = None,
) -> float:
    """One pass over ``train_rows``; the mean training loss. Seeded by the epoch, so a
    resumed run draws the same batches, mixup and dropout as an uninterrupted one."""
    torch.manual_seed(config.seed * 1_000_003 + epoch)
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    model, optimizer = state.model, state.optimizer
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64)
    seen = 0
    batches = batch_stream(config, store, train_rows, training=True, epoch=epoch,
                           targets=targets)
    for step, batch in enumerate(batches):
        inputs, batch_targets = _to(batch, device)
        assert batch_targets is not None
        if config.mixup_alpha > 0:
            inputs, batch_targets = _mix(config, inputs, batch_targets, generator)
        with _autocast(device, config.amp):
            loss = state.loss_fn(model(inputs), batch_targets)
        optimizer.zero_grad(set_to_none=True)
        state.scaler.scale(loss).backward()
        if config.optim.grad_clip:
            state.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        state.scaler.step(optimizer)
        state.scaler.update()
        state.scheduler.step()
        if state.average is not None:
            state.average.update_parameters(model)
        # Summed on the tensor: a float() per step would sync a GPU every batch.
        loss_sum += loss.detach().double().cpu() * len(batch.rows)
        seen += len(batch.rows)
        if progress is not None and step % 10 == 0:
            progress("step", {"epoch": epoch, "step": step, "steps": state.steps_per_epoch,
                              "loss": float(loss_sum) / max(seen, 1)})
    if state.average is not None:
        _sync_buffers(state.average, model)
    return float(loss_sum) / max(seen, 1)


def validate_and_checkpoint(
    state: FoldState, config: TrainConfig, store: Store, valid_rows: np.ndarray, epoch: int,
    device: torch.device, out_dir: Path, train_loss: float, epoch_began: float,
) -> dict[str, float]:
    """The epoch's record (its training loss, GAP@20 and BCE of ``valid_rows``), added to
    the history; best.pt when the GAP is the best yet, then last.pt (everything a resume
    needs)."""
    gap, bce = evaluate(state.scored, store, valid_rows, config, device)
    record = {"epoch": epoch, "train_loss": train_loss, "gap": gap, "bce": bce,
              "lr": float(state.scheduler.get_last_lr()[0]),
              "seconds": time.perf_counter() - epoch_began}
    state.history.append(record)
    if gap > state.best["gap"]:
        state.best = {"gap": gap, "bce": bce, "epoch": epoch}
        _save(out_dir / "best.pt", {"model": state.scored.state_dict(), "epoch": epoch,
                                    "gap": gap})
    _save(out_dir / "last.pt", {
        "model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(), "history": state.history,
        "best": state.best, "epoch": epoch,
        "average": None if state.average is None else state.average.state_dict()})
    return record


def train_fold(
    config: TrainConfig,
    store: Store,
    train_rows: np.ndarray,
    valid_rows: np.ndarray,
    out_dir: Path,
    progress: Progress | None = None,
    model_factory: ModelFactory | None = None,
    targets: TargetFn | None = None,
) -> FoldResult:
    """Train on ``train_rows`` with early stopping on GAP@20 of ``valid_rows`` against their
    true labels; writes best.pt, last.pt and metrics.json to ``out_dir``, resuming from
    last.pt when present. ``targets`` replaces the hard training labels (soft labels)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config)
    set_process_flags(config)
    state = setup_fold(config, store, train_rows, out_dir, device, model_factory)
    began = time.perf_counter()
    curves = CurveWriter(out_dir)
    for epoch in range(state.start_epoch, config.epochs):
        if epoch - state.best["epoch"] > config.patience and state.best["epoch"] >= 0:
            break
        epoch_began = time.perf_counter()
        train_loss = train_one_epoch(state, config, store, train_rows, epoch, device, targets,
                                     progress)
        record = validate_and_checkpoint(state, config, store, valid_rows, epoch, device,
                                         out_dir, train_loss, epoch_began)
        curves.add(state.history)  # after last.pt: a resume never re-trains an epoch it shows
        if progress is not None:
            progress("epoch", record)
    best = state.best
    result = FoldResult(best_epoch=int(best["epoch"]), best_gap=float(best["gap"]),
                        best_bce=float(best["bce"]), epochs_run=len(state.history),
                        seconds=time.perf_counter() - began)
    write_json(out_dir / "metrics.json", {"result": result.__dict__, "history": state.history})
    return result


def load_best(
    config: TrainConfig, store: Store, fold_dir: Path, device: torch.device,
    model_factory: ModelFactory | None = None,
) -> nn.Module:
    """The fold's best checkpoint (never the last: out-of-fold predictions come from the
    model that early stopping chose)."""
    model = build_model(config, store, model_factory).to(device)
    state = load_checkpoint(fold_dir / "best.pt", device)
    model.load_state_dict(state["model"])
    model.eval()
    return model
