"""`yt8m report RUN`: one self-contained HTML page (every figure embedded as base64, no
network needed) and the PNGs beside it, in ``RUN/report/`` by default."""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yt8mkit.analysis import figures
from yt8mkit.analysis.gold import gold_comparison
from yt8mkit.analysis.outcomes import LabelOutcomes, analyse
from yt8mkit.analysis.run_info import RunInfo, read_run
from yt8mkit.analysis.subject import Split, Subject, choose_subject
from yt8mkit.data.store import Store
from yt8mkit.data.vocabulary import Vocabulary, load_vocabulary, run_vocabulary
from yt8mkit.errors import Yt8mError

REPORT_FILE = "report.html"
TOP_LABELS = 20


@dataclass
class Figure:
    key: str
    title: str
    caption: str
    path: Path


@dataclass
class Report:
    html: Path
    figures: list[Figure]
    subject: Subject
    outcomes: LabelOutcomes
    notes: list[str] = field(default_factory=list)


def build_report(run_dir: Path, out_dir: Path | None = None,
                 vocabulary: Path | None = None, model: str | None = None,
                 split: Split | None = None, k: int = 20) -> Report:
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    vocab_path = vocabulary or run_vocabulary(run_dir)
    vocab = load_vocabulary(vocab_path) if vocab_path is not None else None
    subject = choose_subject(run_dir, model, split)
    outcomes = analyse(subject.predictions, subject.store, k=k)
    train_counts = Store(run_dir / "store").label_counts()
    if len(train_counts) < outcomes.num_classes:
        train_counts = np.pad(train_counts, (0, outcomes.num_classes - len(train_counts)))
    info = read_run(run_dir)

    made: list[Figure] = []

    def add(key: str, title: str, caption: str, draw: Callable[[Path], Path]) -> None:
        tmp = out_dir / f".{key}.png.tmp"
        draw(tmp)
        if tmp.stat().st_size == 0:
            raise Yt8mError(f"{tmp}: the figure came out empty")
        os.replace(tmp, out_dir / f"{key}.png")
        made.append(Figure(key, title, caption, out_dir / f"{key}.png"))

    add("fig4a_pr_heatmap", "Fig. 4a: precision–recall heatmap",
        "How many labels fall in each cell of precision against recall. Mass above the "
        "diagonal: false positives are rarer than false negatives (the model is shy); "
        "below it, it over-predicts.",
        lambda p: figures.pr_heatmap(outcomes, p))
    add("fig4b_f1_vs_training_videos", "Fig. 4b: F1 against training videos",
        "More training videos usually means a better label; rare labels far above the "
        "median line are learnt well anyway, frequent ones far below it are candidates "
        "for a closer look (noisy labels, ambiguous classes).",
        lambda p: figures.f1_vs_training_videos(outcomes, train_counts, p))
    add("fig4c_f1_distribution", "Fig. 4c: labels by F1",
        "How many labels the model gets right: a heavy left end is the set of labels it "
        "cannot predict yet.",
        lambda p: figures.f1_distribution(outcomes, p))
    if vocab is not None and vocab.verticals:
        stats = figures.vertical_stats(outcomes, train_counts, vocab.verticals)
        add("fig5_verticals", "Fig. 5: accuracy per vertical",
            "Verticals (coarse groups of labels, Vertical1) with their accuracy beside the "
            "positive training examples they have: popular verticals are usually easier, "
            "and the exceptions are where more data alone will not help.",
            lambda p: figures.verticals(stats, p))
    else:
        notes.append("Fig. 5 (accuracy per vertical) is left out: no vocabulary with a "
                     "Vertical1 column (give --vocabulary; synthetic runs use their "
                     "generator's vocabulary.csv).")
    if info.rows:
        add("table1", "Table 1 of this run",
            "Every model of the run with its out-of-fold GAP@20 and BCE, whether it is "
            "frame-level and whether it joined the ensemble; second-level rows at the end.",
            lambda p: figures.table_one(info.rows, p))
    else:
        notes.append("Table 1 is left out: no model metrics in the run directory.")
    if info.curves:
        add("training_curves", "Training curves",
            "Per model and fold: validation GAP@20 by epoch, and the training loss beside "
            "the validation BCE. A validation curve that turns down while the training "
            "loss still falls is overfitting; early stopping kept the best epoch.",
            lambda p: figures.training_curves(info.curves, p))
    else:
        notes.append("Training curves are left out: no fold has a training history.")

    gold = gold_comparison(run_dir)
    if gold is not None and gold[1]:
        gold_split, gold_rows = gold
        add("gold_vs_observed", "Observed against gold labels, per stage",
            "Synthetic data keeps every video's clean (gold) labels beside the noisy observed "
            "ones. A stage whose gold GAP rises more than its observed GAP learnt the "
            "content rather than the annotation noise: what the paper expects of the "
            "ensemble's soft labels and of the model distilled from them.",
            lambda p: figures.gold_vs_observed(gold_rows, gold_split, p))

    page = _html(run_dir, info, subject, outcomes, vocab, train_counts, made, notes)
    tmp = out_dir / f".{REPORT_FILE}.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out_dir / REPORT_FILE)
    return Report(html=out_dir / REPORT_FILE, figures=made, subject=subject,
                  outcomes=outcomes, notes=notes)


def ranked_labels(outcomes: LabelOutcomes, best: bool, n: int = TOP_LABELS) -> np.ndarray:
    """The n labels of highest (or lowest) F1 among those with outcomes; among equal F1,
    the ones with more outcomes first (a label wrong 50 times says more than one wrong
    once)."""
    seen = np.flatnonzero(outcomes.seen())
    f1 = outcomes.f1()[seen]
    volume = (outcomes.tp + outcomes.fp + outcomes.fn)[seen]
    order = np.lexsort((-volume, -f1 if best else f1))
    return seen[order[:n]]


def _label_table(title: str, labels: np.ndarray, outcomes: LabelOutcomes,
                 vocab: Vocabulary | None, train_counts: np.ndarray) -> str:
    precision, recall, f1 = outcomes.precision(), outcomes.recall(), outcomes.f1()
    head = ("<tr><th>index</th><th>name</th><th>vertical</th><th>training videos</th>"
            "<th>TP</th><th>FP</th><th>FN</th><th>precision</th><th>recall</th>"
            "<th>F1</th><th>AP</th></tr>")
    body = []
    for c in labels:
        name = vocab.name(c) if vocab is not None else ""
        vertical = (vocab.vertical(c) or "") if vocab is not None else ""
        body.append(
            f"<tr><td>{c}</td><td>{html.escape(name)}</td><td>{html.escape(vertical)}</td>"
            f"<td>{int(train_counts[c]):,}</td><td>{outcomes.tp[c]}</td>"
            f"<td>{outcomes.fp[c]}</td><td>{outcomes.fn[c]}</td><td>{_num(precision[c])}</td>"
            f"<td>{_num(recall[c])}</td><td>{_num(f1[c])}</td><td>{_num(outcomes.ap[c])}</td>"
            "</tr>")
    return f"<h3>{html.escape(title)}</h3><table>{head}{''.join(body)}</table>"


def _num(value: float) -> str:
    return "–" if np.isnan(value) else f"{value:.3f}"


def _embed(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f0f0f0; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; max-width: 60em; }
pre { background: #f6f6f6; padding: 1em; overflow: auto; max-height: 30em; }
.note { color: #8a5a00; }
"""


def _html(run_dir: Path, info: RunInfo, subject: Subject, outcomes: LabelOutcomes,
          vocab: Vocabulary | None, train_counts: np.ndarray, made: list[Figure],
          notes: list[str]) -> str:
    e = html.escape
    seen = outcomes.seen()
    summary = (
        f"<p>Analysed: <b>{e(subject.describe())}</b>, top {outcomes.k} predictions of "
        f"{outcomes.num_videos:,} labelled videos. {int(seen.sum()):,} of "
        f"{outcomes.num_classes:,} labels have an outcome; in all {int(outcomes.tp.sum()):,} "
        f"true positives, {int(outcomes.fp.sum()):,} false positives, "
        f"{int(outcomes.fn.sum()):,} false negatives; mean AP over labels with a positive "
        f"{np.nanmean(outcomes.ap) if np.isfinite(outcomes.ap).any() else float('nan'):.4f}."
        f"</p>"
        f"<p>Vocabulary: {e(str(vocab.path)) if vocab is not None else 'none (indices only)'}"
        f"</p>"
    )
    definition = (
        "<p>Outcomes as section 4 of the paper defines them, over each video's top "
        f"{outcomes.k} predictions: a <b>true positive</b> is a positive label scored above "
        "every negative label of the video; a <b>false positive</b> a negative label scored "
        "above at least one positive; a <b>false negative</b> a positive label scored below "
        "at least one negative (a positive missing from the top is below them all). "
        "Precision = TP/(TP+FP), recall = TP/(TP+FN), F1 their harmonic mean; AP is each "
        "label's average precision over the pooled top predictions of all videos.</p>"
    )
    table1 = ""
    if info.rows:
        rows = "".join(
            f"<tr><td>{e(r.name)}</td><td>{'yes' if r.frame_level else 'no'}</td>"
            f"<td>{_opt(r.gap)}</td><td>{_opt(r.bce)}</td>"
            f"<td>{ {None: '', True: 'yes', False: 'no'}[r.in_ensemble]}</td>"
            f"<td>{_opt(r.selection_gap)}</td>"
            f"<td>{_opt(r.test_gap)}</td></tr>" for r in info.rows)
        # The selection split's GAP is the leak-free one for every row (the out-of-fold GAP
        # of a model trained on soft labels is not): docs/leak-free-second-level.md.
        table1 = ("<h2>Table 1</h2><table><tr><th>model</th><th>frame-level</th>"
                  "<th>GAP@20 (out of fold)</th><th>BCE</th><th>in ensemble</th>"
                  "<th>GAP@20 (selection split)</th>"
                  f"<th>GAP@20 (test)</th></tr>{rows}</table>")
    timings = "".join(f"<tr><td>{e(what)}</td><td>{seconds:,.1f}</td></tr>"
                      for what, seconds in info.timings)
    figs = "".join(
        f'<figure id="{f.key}"><h3>{e(f.title)}</h3><img alt="{e(f.title)}" '
        f'src="{_embed(f.path)}"><figcaption>{e(f.caption)}</figcaption></figure>'
        for f in made)
    note_html = "".join(f'<p class="note">{e(n)}</p>' for n in notes)
    best = _label_table(f"The {TOP_LABELS} best labels (highest F1)",
                        ranked_labels(outcomes, best=True), outcomes, vocab, train_counts)
    worst = _label_table(f"The {TOP_LABELS} worst labels (lowest F1)",
                         ranked_labels(outcomes, best=False), outcomes, vocab, train_counts)
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>yt8m report: {e(run_dir.name)}</title><style>{STYLE}</style></head><body>"
        f"<h1>Run {e(str(run_dir))}</h1>{summary}{definition}{note_html}{table1}"
        f"<h2>Figures</h2>{figs}<h2>Labels</h2>{best}{worst}"
        f"<h2>Timings</h2><table><tr><th>what</th><th>seconds</th></tr>{timings}</table>"
        f"<h2>Config</h2><pre>{e(info.config_text)}</pre></body></html>"
    )


def _opt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
