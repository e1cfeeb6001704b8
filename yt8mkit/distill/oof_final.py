"""The final layer trained on out-of-fold student features, as the paper does it (section
3: "we make out-of-fold predictions again, take each model's features on the penultimate
layer, concatenate, and feed them into a new trainable classification layer").

A training video of fold k gets the features of fold k's students, which never trained on
it; one layer is trained over all of them. Trained instead on the features of the
students' own training videos (each fold's final layer over its students, the other
``final_fit``), the layer learns how the students behave on videos they fitted, and
trusts them more than their held-out behaviour warrants (measured on dev/,
bench/results/final_fit.md).

The fold students start from one initialisation (the trainer seeds by the config's seed,
not the fold), so their features stay close enough for one layer to read them all; the
selection split and the test videos get the mean over the folds of the layer's
probability over each fold's students' features, which is what the exported "all folds"
model computes (export/final.py). The epoch is chosen on the selection split.

Directory (``final/``): ``features/`` (memory-mapped float16: ``oof.npy`` videos x dims,
``selection.npy`` and ``test.npy`` folds x videos x dims), ``head.pt`` of each epoch's
best so far, ``foldK/best.pt`` (the final model of fold k: its students and the layer, as
the export reads it), ``oof/``, ``test/``, ``submission.csv``, ``metrics.json``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from yt8mkit.data.folds import fold_ids, selection_rows
from yt8mkit.data.predictions import PredictionsWriter
from yt8mkit.data.store import Store
from yt8mkit.distill.final_model import FinalModel
from yt8mkit.metrics.gap import GapAccumulator
from yt8mkit.rundir import finish_test_set, prediction_gap, write_json
from yt8mkit.train.batches import TargetFn
from yt8mkit.train.checkpoints import load_checkpoint, save_checkpoint
from yt8mkit.train.config import TrainConfig
from yt8mkit.train.run import check_run_config

Report = Callable[[str], None]
FinalFactory = Callable[[int], FinalModel]
_CHUNK = 2048


def _inputs(store: Store, rows: np.ndarray) -> dict[str, torch.Tensor]:
    return {m: torch.from_numpy(np.asarray(store.video_features(m)[rows], np.float32))
            for m in store.modalities}


def _penultimate(model: FinalModel, store: Store, rows: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.penultimate(_inputs(store, rows)).numpy().astype(np.float16)


def _open(path: Path, shape: tuple[int, ...]) -> np.memmap:
    return np.lib.format.open_memmap(path, "w+", np.float16, shape)


def write_features(build: FinalFactory, store: Store, folds: np.ndarray,
                   test_store: Store | None, out: Path, say: Report) -> None:
    """``out``/{oof,selection,test}.npy, once (renamed into place when whole)."""
    if (out / "done.json").is_file():
        return
    tmp = out.with_name(f".{out.name}.partial")
    tmp.mkdir(parents=True, exist_ok=True)
    fold_list = fold_ids(folds)
    selection = selection_rows(folds)
    models = {f: build(f).eval() for f in fold_list}
    dims = next(iter(models.values())).penultimate_dim
    oof = _open(tmp / "oof.npy", (len(folds), dims))
    sel = _open(tmp / "selection.npy", (len(fold_list), len(selection), dims))
    num_test = test_store.num_videos if test_store is not None else 0
    test = _open(tmp / "test.npy", (len(fold_list), num_test, dims))
    for i, fold in enumerate(fold_list):
        began = time.perf_counter()
        model = models[fold]
        for part, source, rows in (("oof", store, np.flatnonzero(folds == fold)),
                                   ("sel", store, selection),
                                   ("test", test_store, np.arange(num_test))):
            for start in range(0, len(rows), _CHUNK):
                chunk = rows[start:start + _CHUNK]
                assert source is not None
                features = _penultimate(model, source, chunk)
                if part == "oof":
                    oof[chunk] = features
                elif part == "sel":
                    sel[i, start:start + len(chunk)] = features
                else:
                    test[i, start:start + len(chunk)] = features
        say(f"distill: final-layer features of fold {fold} ({time.perf_counter() - began:.0f} s)")
    for array in (oof, sel, test):
        array.flush()
    del oof, sel, test
    (tmp / "done.json").write_text(json.dumps({"dims": dims, "folds": fold_list}))
    if out.exists():  # a partial of an earlier try without done.json
        for child in out.iterdir():
            child.unlink()
        out.rmdir()
    os.replace(tmp, out)


def _fold_mean(head: nn.Linear, features: np.ndarray, start: int, stop: int) -> np.ndarray:
    with torch.no_grad():
        probs = [torch.sigmoid(head(torch.from_numpy(np.asarray(f[start:stop], np.float32))))
                 for f in features]
    return torch.stack(probs).mean(dim=0).numpy()


def _selection_gap(head: nn.Linear, features: np.ndarray, store: Store,
                   rows: np.ndarray) -> float:
    accumulator = GapAccumulator(k=20)
    for start in range(0, len(rows), _CHUNK):
        stop = min(start + _CHUNK, len(rows))
        accumulator.add_dense(_fold_mean(head, features, start, stop),
                              store.labels_dense(rows[start:stop]))
    return accumulator.gap()


def _initial_head(build: FinalFactory, fold_list: list[int], dims: int,
                  num_classes: int) -> nn.Linear:
    """The students' own output layers, side by side and averaged over the folds: at the
    start, the layer's logits are near the mean of the students' logits."""
    head = nn.Linear(dims, num_classes)
    weights, biases = [], []
    for fold in fold_list:
        students: list[Any] = list(build(fold).students)  # video-level: a linear output
        weights.append(torch.cat([s.output.weight for s in students], dim=1) / len(students))
        biases.append(torch.stack([s.output.bias for s in students]).mean(dim=0))
    with torch.no_grad():
        head.weight.copy_(torch.stack(weights).mean(dim=0))
        head.bias.copy_(torch.stack(biases).mean(dim=0))
    return head


def train_head(config: TrainConfig, store: Store, folds: np.ndarray, features_dir: Path,
               build: FinalFactory, targets: TargetFn | None, out: Path, say: Report,
               ) -> dict:
    """The layer over the out-of-fold features, epoch by epoch; the best on the selection
    split is kept (``out/head.pt``). Deterministic under the config's seed."""
    fold_list = fold_ids(folds)
    oof = np.load(features_dir / "oof.npy", mmap_mode="r")
    sel_features = np.load(features_dir / "selection.npy", mmap_mode="r")
    selection = selection_rows(folds)
    train = np.flatnonzero(folds >= 0)
    torch.manual_seed(config.seed)
    head = _initial_head(build, fold_list, oof.shape[1], store.num_classes)
    optimizer = torch.optim.Adam(head.parameters(), lr=config.optim.lr,
                                 weight_decay=config.optim.weight_decay)
    steps = config.epochs * -(-len(train) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.optim.lr, total_steps=steps,
                                                   pct_start=0.1)
    best = {"epoch": -1, "gap": _selection_gap(head, sel_features, store, selection)
            if len(selection) else -1.0}
    save_checkpoint(out / "head.pt", {"model": head.state_dict(), "epoch": -1})
    say(f"distill: final layer before training: selection GAP@20 {best['gap']:.4f}")
    for epoch in range(config.epochs):
        began = time.perf_counter()
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        order = train[torch.randperm(len(train), generator=generator).numpy()]
        head.train()
        for start in range(0, len(order), config.batch_size):
            rows = np.sort(order[start:start + config.batch_size])
            x = torch.from_numpy(np.asarray(oof[rows], np.float32))
            y = torch.from_numpy(targets(rows) if targets is not None
                                 else store.labels_dense(rows))
            loss = functional.binary_cross_entropy_with_logits(head(x), y, reduction="sum")
            optimizer.zero_grad(set_to_none=True)
            (loss / len(rows)).backward()
            optimizer.step()
            schedule.step()
        head.eval()
        # Without a selection split the last epoch is kept: the out-of-fold rows trained
        # the layer, so a choice on them would be a choice on training data.
        gap = _selection_gap(head, sel_features, store, selection) if len(selection) else 0.0
        say(f"distill: final layer epoch {epoch + 1}/{config.epochs}: selection GAP@20 "
            f"{gap:.4f} ({time.perf_counter() - began:.0f} s)")
        if gap >= best["gap"] or not len(selection):
            best = {"epoch": epoch, "gap": gap}
            save_checkpoint(out / "head.pt", {"model": head.state_dict(), "epoch": epoch})
    return best


def run_oof_final(config: TrainConfig, store: Store, folds: np.ndarray, build: FinalFactory,
                  targets: TargetFn | None, out: Path, test_store: Store | None,
                  report: Report | None = None) -> dict:
    """The out-of-fold final layer, its fold models, predictions and metrics (resumes from
    what is complete: features, then the layer, then the outputs)."""
    say = report or (lambda message: None)
    final = out / "metrics.json"
    if final.is_file():
        return json.loads(final.read_text())
    check_run_config(out, config)
    features_dir = out / "features"
    write_features(build, store, folds, test_store, features_dir, say)
    if not (out / "head.json").is_file():
        best = train_head(config, store, folds, features_dir, build, targets, out, say)
        write_json(out / "head.json", best)
    best = json.loads((out / "head.json").read_text())
    head_state = load_checkpoint(out / "head.pt")["model"]
    fold_list = fold_ids(folds)
    head = nn.Linear(*reversed(head_state["weight"].shape))
    head.load_state_dict(head_state)
    head.eval()
    for fold in fold_list:  # the final model of each fold, as export reads it
        model = build(fold)
        model.output.load_state_dict(head_state)
        (out / f"fold{fold}").mkdir(exist_ok=True)
        save_checkpoint(out / f"fold{fold}" / "best.pt", {"model": model.state_dict()})

    selection = selection_rows(folds)
    oof_features = np.load(features_dir / "oof.npy", mmap_mode="r")
    writer = PredictionsWriter(out / "oof", len(folds), store.num_classes, config.top_k)
    train = np.flatnonzero(folds >= 0)
    for start in range(0, len(train), _CHUNK):
        rows = train[start:start + _CHUNK]
        with torch.no_grad():
            writer.write_dense(rows, torch.sigmoid(
                head(torch.from_numpy(np.asarray(oof_features[rows], np.float32)))).numpy())
    sel_features = np.load(features_dir / "selection.npy", mmap_mode="r")
    for start in range(0, len(selection), _CHUNK):
        stop = min(start + _CHUNK, len(selection))
        writer.write_dense(selection[start:stop], _fold_mean(head, sel_features, start, stop))
    oof = writer.close()
    metrics: dict = {
        "name": config.name, "model": "final_layer_out_of_fold", "frame_level": False,
        "best_epoch": best["epoch"], "selected_on": "selection" if len(selection) else "last",
        # The layer trained on these rows (their features are out of fold, their targets
        # are not): optimistic, for reference only.
        "oof_gap": prediction_gap(oof, store, train),
    }
    if len(selection):
        metrics["selection_gap"] = prediction_gap(oof, store, selection)
    if test_store is not None:
        test_features = np.load(features_dir / "test.npy", mmap_mode="r")
        test_writer = PredictionsWriter(out / "test", test_store.num_videos, store.num_classes,
                                        config.top_k)
        for start in range(0, test_store.num_videos, _CHUNK):
            stop = min(start + _CHUNK, test_store.num_videos)
            test_writer.write_dense(np.arange(start, stop),
                                    _fold_mean(head, test_features, start, stop))
        test = test_writer.close()
        metrics.update(finish_test_set(test, test_store, out))
    write_json(final, metrics)
    return metrics

