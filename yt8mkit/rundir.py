"""The bookkeeping of a run directory, written once for every stage (train, zoo, stack,
distill, export, pipeline):

- claiming it for writing (``lock_run_dir``), the first call of every entry point;
- atomic stage outputs (``write_atomic``, ``write_json``);
- the done marker, which vouches only for outputs that are there (``mark_done``,
  ``read_done``);
- the config guard: the resolved config recorded on the first run, another one refused
  on a resume (``guard_config``);
- out-of-fold assembly from the folds' held-out parts (``assemble_folds``);
- the GAP of a prediction set (``prediction_gap``), over the videos that count in a GAP
  (``Store.scored_rows``: the labelled ones).

A run directory is refused when it is a file, or an existing folder with other
things in it than a run of this tool (the tool never deletes or overwrites what it
did not write); otherwise its writer lock is taken until the process ends, so that a
second writer gets "in use by pid N" instead of racing the first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from yt8mkit.errors import Yt8mError
from yt8mkit.locks import acquire
from yt8mkit.outputs import OutputError, write_text_atomic

if TYPE_CHECKING:
    from yt8mkit.data.predictions import Predictions, PredictionsWriter
    from yt8mkit.data.store import Store

LOCK = ".lock"
# What a run directory of this tool holds, besides its lock (written by every writer
# since locks exist): the config files of the train, pipeline and stack runs, a zoo's
# failures.json, and metrics.json; distillation's folder holds runs in subfolders.
_MARKERS = ("config.yaml", "config.json", "failures.json", "metrics.json", LOCK)


def is_run_dir(path: Path) -> bool:
    if any((path / name).is_file() for name in _MARKERS):
        return True
    return any((sub / "config.yaml").is_file() for sub in path.iterdir() if sub.is_dir())


def lock_run_dir(run_dir: str | os.PathLike[str]) -> None:
    """Check that ``run_dir`` is new, empty or a run directory of this tool, create it,
    and take its writer lock until this process ends (re-entrant in one process)."""
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file, not a run directory")
    if path.is_dir() and any(path.iterdir()) and not is_run_dir(path):
        raise OutputError(
            f"{path}: exists and is not a run directory of yt8mkit; it is left as it is "
            f"(give another --out)"
        )
    acquire(path / LOCK, f"run directory {path}")


# ---------------------------------------------------------------- stage outputs


def write_atomic(path: Path, text: str) -> None:
    """``text`` into ``path`` through a scratch file and a rename
    (``outputs.write_text_atomic``): a reader (and a resumed run) sees the old file or
    the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2))


DONE = "done.json"


def _present(path: Path) -> bool:
    """An output is there: a file, or a complete prediction set (its meta is written last)."""
    from yt8mkit.data.predictions import Predictions

    return path.is_file() or (path.is_dir() and Predictions.exists(path))


def mark_done(folder: Path, info: dict[str, Any], outputs: Sequence[str]) -> dict[str, Any]:
    """Write ``folder/done.json`` once every output it vouches for (names in ``folder``)
    is there; a marker never vouches for a missing output. Returns ``info``."""
    missing = [name for name in outputs if not _present(folder / name)]
    if missing:
        raise Yt8mError(f"{folder}: cannot mark done, missing {missing}")
    write_json(folder / DONE, info)
    return info


def read_done(folder: Path, outputs: Sequence[str]) -> dict[str, Any] | None:
    """What ``folder/done.json`` records, when it and every output in ``outputs`` are
    there; else None (the step is to be (re)done)."""
    marker = folder / DONE
    if not marker.is_file() or not all(_present(folder / name) for name in outputs):
        return None
    result: dict[str, Any] = json.loads(marker.read_text())
    return result


def is_done(folder: Path, outputs: Sequence[str]) -> bool:
    return read_done(folder, outputs) is not None


# ---------------------------------------------------------------- the config guard


class RunConfigError(Yt8mError):
    """A run directory made with another config: runs are never overwritten in place."""


def _differences(old: Any, new: Any, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in old or key not in new:
                found.append(where)
            else:
                found += _differences(old[key], new[key], where)
        return found
    return [] if old == new else [path or "(the whole config)"]


def guard_config(run_dir: Path, name: str, config: dict[str, Any],
                 normalise: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
    """Record ``config`` (resolved: every default filled in) as ``run_dir/name`` (YAML, or
    JSON for a ``.json`` name) on the first run; on a resume, refuse another one, naming
    the keys that differ. ``normalise`` maps a config (the stored one and this one) to
    what decides the results: e.g. a stored config validated again, so that a run written
    before a new setting existed holds that setting's default and still resumes."""
    path = run_dir / name
    as_json = path.suffix == ".json"
    if path.is_file():
        text = path.read_text()
        stored = json.loads(text) if as_json else yaml.safe_load(text)
        view = normalise or (lambda c: c)
        try:
            old = view(stored)
        except ValueError as err:
            raise RunConfigError(f"{path}: the recorded config no longer reads ({err}); "
                                 f"use a new output directory") from None
        changed = _differences(old, view(config))
        if changed:
            shown = ", ".join(changed[:8]) + (" ..." if len(changed) > 8 else "")
            raise RunConfigError(
                f"{run_dir}: this run directory was made with another config (differs at "
                f"{shown}); use a new output directory (runs are never overwritten in place)"
            )
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(config, indent=2, sort_keys=True) if as_json
                 else yaml.safe_dump(config, sort_keys=False))


# ---------------------------------------------------------------- prediction sets


def assemble_folds(writer: PredictionsWriter, fold_dirs: Sequence[Path]) -> None:
    """Write each fold's held-out part (``fold/oof`` at the rows ``fold/oof_rows.npy``)
    into the out-of-fold set ``writer`` fills."""
    from yt8mkit.data.predictions import Predictions

    for fold_dir in fold_dirs:
        part = Predictions(fold_dir / "oof")
        rows = np.load(fold_dir / "oof_rows.npy")
        writer.write_sparse(rows, np.asarray(part.indices), np.asarray(part.scores))


def prediction_gap(predictions: Predictions, store: Store, rows: np.ndarray | None = None,
                   k: int = 20, block_videos: int = 65536) -> float:
    """GAP@k of a prediction set aligned with ``store``, over the videos among ``rows``
    (all the store's by default) that count (``Store.scored_rows``: the labelled ones),
    block by block."""
    from yt8mkit.metrics import GapAccumulator, Labels

    labels = Labels(np.asarray(store.labels_indptr), np.asarray(store.labels_indices),
                    store.num_classes)
    chosen = store.scored_rows(rows)
    accumulator = GapAccumulator(k)
    for start in range(0, len(chosen), block_videos):
        part = chosen[start : start + block_videos]
        accumulator.add_top_k(np.asarray(predictions.indices[part], np.int64),
                              np.asarray(predictions.scores[part], np.float32),
                              labels.take(part))
    return accumulator.gap()


def finish_test_set(test: Predictions, test_store: Store, out: Path) -> dict[str, float]:
    """A model's test predictions as its submission (``out/submission.csv``), and their
    GAP@20 (``test_gap``) when the test videos are labelled."""
    from yt8mkit.data.submission import write_submission

    write_submission(out / "submission.csv", test_store.ids(), np.asarray(test.indices),
                     np.asarray(test.scores, np.float32))
    return {"test_gap": prediction_gap(test, test_store)} if test_store.has_labels else {}
