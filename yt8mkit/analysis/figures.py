"""The report's figures as PNG files: the paper's Figs. 4 and 5, Table 1, and training
curves. Drawn on matplotlib's object API (no pyplot): no global state, no display, the
Agg canvas only, so it runs in CI, in worker processes and side by side."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from yt8mkit.analysis.gold import GoldRow
from yt8mkit.analysis.outcomes import LabelOutcomes
from yt8mkit.zoo.table import TableRow

DPI = 110


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=DPI, bbox_inches="tight")
    return path


def pr_heatmap(outcomes: LabelOutcomes, path: Path, bins: int = 10) -> Path:
    """Fig. 4a: how many labels fall in each (recall, precision) cell."""
    precision, recall = outcomes.precision(), outcomes.recall()
    # A label never predicted has no precision, one never positive no recall: such a
    # label sits at 0 on that axis, where the model did not get it.
    keep = outcomes.seen()
    p = np.nan_to_num(precision[keep])
    r = np.nan_to_num(recall[keep])
    edges = np.linspace(0, 1, bins + 1)
    grid, _, _ = np.histogram2d(p, r, bins=[edges, edges])
    fig = Figure(figsize=(5.6, 4.8))
    ax = fig.add_subplot()
    # Log colours: one crowded cell (the labels a weak model never gets) would otherwise
    # paint every other cell the same dark.
    shown = np.ma.masked_equal(grid, 0)
    image = ax.imshow(shown, origin="lower", extent=(0, 1, 0, 1), cmap="viridis",
                      aspect="auto", norm=LogNorm(vmin=1, vmax=max(grid.max(), 1)))
    ax.set_facecolor("#f4f4f4")
    fig.colorbar(image, ax=ax, label="labels")
    for i in range(bins):
        for j in range(bins):
            if grid[i, j]:
                ax.text((j + 0.5) / bins, (i + 0.5) / bins, f"{int(grid[i, j])}",
                        ha="center", va="center", fontsize=6,
                        color="white" if grid[i, j] < np.sqrt(grid.max()) else "black")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"Precision–recall of {int(keep.sum())} labels (top {outcomes.k})")
    return _save(fig, path)


def f1_vs_training_videos(outcomes: LabelOutcomes, train_counts: np.ndarray,
                          path: Path) -> Path:
    """Fig. 4b: F1 of each label against its number of training videos, log scale."""
    keep = outcomes.seen() & (train_counts[: outcomes.num_classes] > 0)
    counts = train_counts[: outcomes.num_classes][keep]
    f1 = outcomes.f1()[keep]
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    ax.scatter(counts, f1, s=8, alpha=0.5, edgecolors="none")
    if keep.sum() > 1:
        # The trend: median F1 of labels binned by training videos (log-spaced bins).
        edges = np.geomspace(counts.min(), counts.max() + 1, 12)
        which = np.digitize(counts, edges)
        centres, medians = [], []
        for b in np.unique(which):
            sel = which == b
            centres.append(np.exp(np.log(counts[sel]).mean()))
            medians.append(np.median(f1[sel]))
        ax.plot(centres, medians, color="C3", lw=2, label="median")
        ax.legend(loc="lower right")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("training videos of the label (log scale)")
    ax.set_ylabel("F1")
    ax.set_title("F1 against training videos")
    return _save(fig, path)


def f1_distribution(outcomes: LabelOutcomes, path: Path, bins: int = 20) -> Path:
    """Fig. 4c: how many labels reach each F1."""
    f1 = outcomes.f1()[outcomes.seen()]
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    ax.hist(f1, bins=list(np.linspace(0, 1, bins + 1)), color="C0", edgecolor="white")
    ax.set_xlabel("F1")
    ax.set_ylabel("labels")
    ax.set_title(f"Labels by F1 (median {np.median(f1) if len(f1) else float('nan'):.3f})")
    return _save(fig, path)


@dataclass
class VerticalStats:
    names: list[str]
    accuracy: np.ndarray  # TP / (TP + FP + FN), pooled over the vertical's labels
    train_positives: np.ndarray  # positive training examples (video, label) per vertical
    labels: np.ndarray  # how many labels of the vertical


def vertical_stats(outcomes: LabelOutcomes, train_counts: np.ndarray,
                   vertical_of: dict[int, str]) -> VerticalStats:
    groups: dict[str, list[int]] = {}
    for index, vertical in vertical_of.items():
        if index < outcomes.num_classes:
            groups.setdefault(vertical, []).append(index)
    names, accuracy, positives, sizes = [], [], [], []
    for vertical, members in groups.items():
        idx = np.asarray(members)
        tp, fp, fn = (int(a[idx].sum()) for a in (outcomes.tp, outcomes.fp, outcomes.fn))
        names.append(vertical)
        accuracy.append(tp / (tp + fp + fn) if tp + fp + fn else np.nan)
        positives.append(int(train_counts[idx].sum()))
        sizes.append(len(idx))
    order = np.argsort(-np.asarray(positives), kind="stable")
    return VerticalStats(names=[names[i] for i in order],
                         accuracy=np.asarray(accuracy)[order],
                         train_positives=np.asarray(positives)[order],
                         labels=np.asarray(sizes)[order])


def verticals(stats: VerticalStats, path: Path) -> Path:
    """Fig. 5: accuracy per vertical beside its positive training examples."""
    n = len(stats.names)
    fig = Figure(figsize=(11, max(3.0, 0.32 * n + 1.2)), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    y = np.arange(n)
    left.barh(y, np.nan_to_num(stats.accuracy), color="C2")
    left.set_yticks(y, [f"{name} ({k})" for name, k in zip(stats.names, stats.labels)],
                    fontsize=8)
    left.invert_yaxis()
    left.set_xlim(0, 1)
    left.set_xlabel("accuracy: TP / (TP + FP + FN)")
    left.set_title("Accuracy per vertical (labels in brackets)")
    right.barh(y, stats.train_positives, color="C1")
    right.set_xscale("log")
    right.set_xlabel("positive training examples (log scale)")
    right.set_title("Positive training examples per vertical")
    return _save(fig, path)


def table_one(rows: Sequence[TableRow], path: Path) -> Path:
    """Table 1 of the run as a table, beside a bar chart of each model's GAP@20."""
    n = max(len(rows), 1)
    # Table above, bars below: side by side, long model names collide with the table.
    fig = Figure(figsize=(10, 0.62 * n + 2.2), layout="constrained")
    table_ax, bar_ax = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1, 1]})
    table_ax.axis("off")
    cells = [[r.name, "yes" if r.frame_level else "no", _fmt(r.gap), _fmt(r.bce),
              {None: "", True: "yes", False: "no"}[r.in_ensemble], _fmt(r.selection_gap),
              _fmt(r.test_gap)]
             for r in rows]
    if cells:
        table = table_ax.table(cellText=cells, loc="center", cellLoc="left",
                               colLabels=["model", "frame-level", "GAP@20 (OOF)", "BCE",
                                          "in ensemble", "GAP@20 (selection)",
                                          "GAP@20 (test)"])
        table.auto_set_font_size(False)
        table.set_fontsize(8)
        table.auto_set_column_width(list(range(7)))
        table.scale(1, 1.25)
    y = np.arange(len(rows))
    oof = [r.gap or 0.0 for r in rows]
    test = [r.test_gap or 0.0 for r in rows]
    bar_ax.barh(y - 0.2, oof, height=0.4, label="out of fold", color="C0")
    if any(r.test_gap is not None for r in rows):
        bar_ax.barh(y + 0.2, test, height=0.4, label="test", color="C1")
    bar_ax.set_yticks(y, [r.name for r in rows], fontsize=8)
    bar_ax.invert_yaxis()
    bar_ax.set_xlim(0, 1)
    bar_ax.set_xlabel("GAP@20")
    bar_ax.legend(loc="lower right", fontsize=8)
    fig.suptitle("Table 1 of this run")
    return _save(fig, path)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


@dataclass
class Curve:
    """One fold of one model: its per-epoch history (trainer's metrics.json)."""

    model: str
    fold: int
    epochs: list[int]
    train_loss: list[float]
    valid_bce: list[float]
    valid_gap: list[float]


def training_curves(curves: Sequence[Curve], path: Path) -> Path:
    """Per model: validation GAP@20 of every fold, and its training and validation loss."""
    models = list(dict.fromkeys(c.model for c in curves))
    fig = Figure(figsize=(11, 2.6 * max(len(models), 1) + 0.4), layout="constrained")
    axes = np.atleast_2d(fig.subplots(max(len(models), 1), 2, squeeze=False))
    for row, model in enumerate(models):
        gap_ax, loss_ax = axes[row]
        for c in (c for c in curves if c.model == model):
            colour = f"C{c.fold % 10}"
            gap_ax.plot(c.epochs, c.valid_gap, marker=".", color=colour, label=f"fold {c.fold}")
            loss_ax.plot(c.epochs, c.train_loss, color=colour, label=f"train, fold {c.fold}")
            loss_ax.plot(c.epochs, c.valid_bce, color=colour, ls="--")
        gap_ax.set_title(f"{model}: validation GAP@20", fontsize=9)
        gap_ax.set_ylabel("GAP@20")
        loss_ax.set_title(f"{model}: train loss (solid), validation BCE (dashed)", fontsize=9)
        loss_ax.set_yscale("log")
        gap_ax.legend(fontsize=6, ncol=5, loc="lower right")
    axes[-1][0].set_xlabel("epoch")
    axes[-1][1].set_xlabel("epoch")
    return _save(fig, path)


def gold_vs_observed(rows: Sequence[GoldRow], split: str, path: Path) -> Path:
    """Per stage: GAP@20 against the observed (noisy) labels and against the gold ones."""
    n = max(len(rows), 1)
    fig = Figure(figsize=(9, 0.5 * n + 1.6), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [r.observed_gap for r in rows], height=0.4, label="observed labels",
            color="C0")
    ax.barh(y + 0.2, [r.gold_gap for r in rows], height=0.4, label="gold (clean) labels",
            color="C2")
    ax.set_yticks(y, [r.name for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("GAP@20")
    where = "test videos" if split == "test" else "training videos, out of fold"
    ax.set_title(f"Observed against gold labels ({where})")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)
