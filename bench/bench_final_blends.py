"""What the final model lacks that the ensemble has: the final model's probabilities
blended with one other prediction set of the same run (a first-level member, the other
final model), the weight chosen on the selection split (11 steps of 0.1) and the blend
then scored on the held-out videos. A pair that gains shows what the students did not
take from the teacher.

    .venv/bin/python bench/bench_final_blends.py [--run runs/real_pipeline]
        [--final distill/soft/final] [--others zoo/resnet_like,zoo/knn,distill/hard/final]
        [--results final_blends]

Every set is read as written (top-K per video; a class outside it counts 0). Writes
bench/results/{results}.json and .md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from results_table import write_results

from yt8mkit.data.folds import selection_rows
from yt8mkit.data.predictions import Predictions
from yt8mkit.data.store import Store
from yt8mkit.metrics import GapAccumulator, Labels

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = np.linspace(0.0, 1.0, 11)


def _gap(probabilities: np.ndarray, store: Store, rows: np.ndarray) -> float:
    labels = Labels(np.asarray(store.labels_indptr), np.asarray(store.labels_indices),
                    store.num_classes)
    top = np.argpartition(-probabilities, 20, axis=1)[:, :20]
    accumulator = GapAccumulator(20)
    accumulator.add_top_k(top.astype(np.int64), np.take_along_axis(probabilities, top, 1),
                          labels.take(rows))
    return accumulator.gap()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default=str(ROOT / "runs" / "real_pipeline"))
    parser.add_argument("--final", default="distill/soft/final")
    parser.add_argument("--others", default="zoo/resnet_like,zoo/knn,distill/hard/final")
    parser.add_argument("--results", default="final_blends")
    args = parser.parse_args()
    run = Path(args.run)
    store, test = Store(run / "store"), Store(run / "test_store")
    chosen = store.scored_rows(selection_rows(store.folds()))
    held_out = test.scored_rows(None)

    def read(name: str) -> tuple[np.ndarray, np.ndarray]:
        return (Predictions(run / name / "oof").dense(chosen),
                Predictions(run / name / "test").dense(held_out))

    final = read(args.final)
    rows = [[args.final, "1.0", f"{_gap(final[0], store, chosen):.4f}",
             f"{_gap(final[1], test, held_out):.4f}"]]
    report: dict = {"run": str(run), "final": args.final, "blends": {}}
    for name in args.others.split(","):
        other = read(name)
        scores = [_gap(w * final[0] + (1 - w) * other[0], store, chosen) for w in WEIGHTS]
        best = int(np.argmax(scores))
        weight = float(WEIGHTS[best])
        held = _gap(weight * final[1] + (1 - weight) * other[1], test, held_out)
        report["blends"][name] = {"weight": weight, "selection": scores, "held_out": held}
        rows.append([f"{args.final} + {name}", f"{weight:.1f}", f"{scores[best]:.4f}",
                     f"{held:.4f}"])
    write_results(args.results, report,
                  ["prediction set", "weight of the final model (chosen on selection)",
                   "selection GAP@20", "held-out GAP@20"], rows,
                  ["", f"Run: {run}; `.venv/bin/python bench/bench_final_blends.py`."])


if __name__ == "__main__":
    main()
