"""What the ensemble and distillation did to label noise, on synthetic data: every
stage's GAP@20 against the observed (noisy) labels beside its GAP@20 against the gold
(clean) labels that the generator kept (``synth/gold_labels.npz``).

The paper's premise is that the ensemble's soft labels are cleaner than the observed
ones; only synthetic data can show it, since real data has no gold labels. The numbers
are on the test split when the run has test predictions, else out of fold on the
training videos.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yt8mkit.analysis.subject import available, model_dir
from yt8mkit.data.predictions import Predictions
from yt8mkit.data.store import Store
from yt8mkit.data.synth import GOLD_FILE, read_gold_labels
from yt8mkit.errors import Yt8mError
from yt8mkit.metrics import Labels, gap_from_top_k


@dataclass
class GoldRow:
    name: str
    observed_gap: float
    gold_gap: float


def gold_comparison(run_dir: Path) -> tuple[str, list[GoldRow]] | None:
    """(split, one row per model with predictions on it), or None without gold labels."""
    synth = run_dir / "synth"
    if not (synth / GOLD_FILE).is_file():
        return None
    pairs = available(run_dir)
    split = "test" if any(s == "test" for _, s in pairs) else "oof"
    store = Store(run_dir / ("test_store" if split == "test" else "store"))
    gold = read_gold_labels(synth, "test" if split == "test" else "train")
    where = {str(i): row for row, i in enumerate(gold.ids)}
    ids = store.ids()
    missing = [i for i in ids if i not in where]
    if missing:
        raise Yt8mError(f"{synth / GOLD_FILE}: no gold labels for {len(missing)} videos of "
                        f"{store.path} (first: {missing[0]!r})")
    num_classes = store.num_classes
    order = np.fromiter((where[i] for i in ids), np.int64, len(ids))
    gold_labels = Labels(gold.gold_indptr, gold.gold_indices, num_classes).take(order)
    observed = Labels(np.asarray(store.labels_indptr), np.asarray(store.labels_indices),
                      num_classes)
    rows = []
    # In the order of the stages: first level, ensemble, distilled final models.
    stage = {"ensemble": 1, "final_soft": 2, "final_hard": 2}
    for name, s in sorted(pairs, key=lambda p: stage.get(p[0], 0)):
        if s != split:
            continue
        predictions = Predictions(model_dir(run_dir, name) / split)
        indices = np.asarray(predictions.indices, np.int64)
        scores = np.asarray(predictions.scores, np.float32)
        rows.append(GoldRow(name, gap_from_top_k(indices, scores, observed),
                            gap_from_top_k(indices, scores, gold_labels)))
    return split, rows
